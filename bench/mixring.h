/*
 * mixring.h -- mixbench's ceiling: a single-producer single-consumer byte
 * ring of variable-length records in shared memory, both sides spinning,
 * one copy in and one copy out.
 *
 * The protocol is bench/t_rawring.c's (ipcbench's raw ring), copied rather
 * than linked because that transport sizes its ring from ipcbench's one
 * message size and takes one record header per ring. What differs here:
 * the ring is MIXRING_BYTES (4 MiB), each record's header follows its own
 * length, and an END record ends the stream.
 *
 * Layout: a header line holding `tail`, the bytes consumed so far (64-bit,
 * never wraps), written only by the consumer; then MIXRING_BYTES of
 * records. A record at position p (offset p & (MIXRING_BYTES - 1)) is an
 * 8-byte stamp and the payload, padded to 8 bytes; a payload over 1 KiB
 * starts on the line after its stamp, so that the consumer waiting on the
 * stamp does not pull the payload's first line away from the producer
 * while it is being written. The stamp publishes the record: its low 24
 * bits are the payload length (or PAD, or END), its high 40 bits p + 1,
 * so a stamp left from an earlier lap never matches. The consumer waits on
 * the stamp of the record it wants, in the line it reads next anyway;
 * there is no shared head. A record never wraps: when it would not fit
 * before the end, the producer writes a PAD stamp there and starts the
 * record at offset 0, and the consumer, seeing PAD, skips to the next lap.
 *
 * The producer keeps its own head and a private copy of tail, rereading
 * the shared one only when its copy says the ring is full; the consumer
 * gives bytes back every sixteenth of the ring and before it waits, not
 * after every record, so that a producer polling a full ring does not
 * pull tail's line back at each store.
 */
#ifndef MIXRING_H
#define MIXRING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MIXRING_BYTES (4u << 20)
#define MIXRING_LINE 64u
#define MIXRING_END 0xfffffeu           /* length of the END record */
#define MIXRING_PAD 0xffffffu           /* length of a PAD record */
#define MIXRING_LEN_BITS 24u
#define MIXRING_SMALL_MAX 1024u         /* larger payloads start on a line */

struct mixring {
	_Alignas(MIXRING_LINE) _Atomic uint64_t tail;
	char pad0[MIXRING_LINE - sizeof(uint64_t)];
	_Alignas(MIXRING_LINE) unsigned char data[];
};
_Static_assert(offsetof(struct mixring, data) == MIXRING_LINE, "tail alone on its line");
_Static_assert((MIXRING_BYTES & (MIXRING_BYTES - 1)) == 0, "a power of two");

/* Each side's private state. */
struct mixring_tx {
	struct mixring *r;
	uint64_t head;          /* our position (private: no shared head) */
	uint64_t tail_seen;     /* the consumer's tail, last time we looked */
};

struct mixring_rx {
	struct mixring *r;
	uint64_t tail;          /* our position */
	uint64_t tail_pub;      /* the tail last stored for the producer */
};

static inline void mixring_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Bytes before a payload of len bytes. */
static inline uint64_t mixring_hdr(uint64_t len)
{
	return len <= MIXRING_SMALL_MAX || len == MIXRING_END ? 8 : MIXRING_LINE;
}

static inline uint64_t mixring_rec(uint64_t len)
{
	return mixring_hdr(len) + (len == MIXRING_END ? 0 : (len + 7) / 8 * 8);
}

static inline uint64_t mixring_stamp(uint64_t pos, uint64_t len)
{
	return ((pos + 1) << MIXRING_LEN_BITS) | len;
}

static inline _Atomic uint64_t *mixring_stamp_at(struct mixring *r, uint64_t off)
{
	return (_Atomic uint64_t *)(void *)(r->data + off);
}

/* Waits for room for a contiguous record of `need` bytes and returns its
 * offset, after a PAD record if it would run past the end. */
static inline uint64_t mixring_claim(struct mixring_tx *t, uint64_t need)
{
	uint64_t off = t->head & (MIXRING_BYTES - 1);
	uint64_t skip = MIXRING_BYTES - off < need ? MIXRING_BYTES - off : 0;

	while (MIXRING_BYTES - (t->head - t->tail_seen) < skip + need) {
		/* acquire: the consumer is done reading the bytes it gives
		 * back; pairs with the release store in mixring_give_back(). */
		t->tail_seen = atomic_load_explicit(&t->r->tail, memory_order_acquire);
		/* Still full: a round of pauses lets the consumer free a batch
		 * before we take tail's line from it again. */
		if (MIXRING_BYTES - (t->head - t->tail_seen) < skip + need)
			for (int i = 0; i < 32; i++)
				mixring_relax();
	}
	if (skip) {
		/* release: as a record's stamp (mixring_send). */
		atomic_store_explicit(mixring_stamp_at(t->r, off), mixring_stamp(t->head, MIXRING_PAD),
				      memory_order_release);
		t->head += skip;
		off = 0;
	}
	return off;
}

/* Copies len bytes in and publishes them; len MIXRING_END (buf unused)
 * ends the stream. Spins while the ring is full. */
static inline void mixring_send(struct mixring_tx *t, const void *buf, uint64_t len)
{
	uint64_t off = mixring_claim(t, mixring_rec(len));

	if (len != MIXRING_END)
		memcpy(t->r->data + off + mixring_hdr(len), buf, len);
	/* release: publishes the payload written before it; pairs with the
	 * acquire load of the stamp in mixring_next(). */
	atomic_store_explicit(mixring_stamp_at(t->r, off), mixring_stamp(t->head, len), memory_order_release);
	t->head += mixring_rec(len);
}

static inline void mixring_give_back(struct mixring_rx *x)
{
	x->tail_pub = x->tail;
	/* release: the records before tail are read, their bytes may be
	 * reused; pairs with the acquire load in mixring_claim(). */
	atomic_store_explicit(&x->r->tail, x->tail, memory_order_release);
}

/* Waits for the next record, skipping PAD, and returns its payload;
 * *len gets its length (MIXRING_END at the end of the stream). The bytes
 * stay valid until mixring_consume(). */
static inline const unsigned char *mixring_next(struct mixring_rx *x, uint64_t *len)
{
	for (;;) {
		uint64_t off = x->tail & (MIXRING_BYTES - 1);
		uint64_t want = mixring_stamp(x->tail, 0) >> MIXRING_LEN_BITS, st;
		/* acquire: the payload before the stamp is written; pairs with
		 * the release store in mixring_send() (or of a PAD in
		 * mixring_claim()). */
		while ((st = atomic_load_explicit(mixring_stamp_at(x->r, off), memory_order_acquire)) >>
		       MIXRING_LEN_BITS != want) {
			if (x->tail_pub != x->tail)
				mixring_give_back(x);
			mixring_relax();
		}
		*len = st & MIXRING_PAD;
		if (*len != MIXRING_PAD)
			return x->r->data + off + mixring_hdr(*len);
		x->tail += MIXRING_BYTES - off;
	}
}

/* Done with the record of len bytes mixring_next() handed out. */
static inline void mixring_consume(struct mixring_rx *x, uint64_t len)
{
	x->tail += mixring_rec(len);
	if (x->tail - x->tail_pub >= MIXRING_BYTES / 16)
		mixring_give_back(x);
}

#endif
