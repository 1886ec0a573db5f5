/*
 * waitset.pml -- the bell of src/waitset.c: a wait set that sleeps on a
 * bus's word never misses a change on one of its channels, checked
 * exhaustively by spin, with the store buffers that a missing fence would
 * let the hardware use.
 *
 * The protocol (waitset.c's header comment), one bus, one member:
 *   wait set:  S1 sets++ (seq_cst)                   register (bus_of)
 *              cursor = head
 *              S2 check the member (seq_cst load)     the pending member
 *              loop:
 *                h = head; if h != cursor: cursor = h, check   drain
 *                P1 sleepers++ (seq_cst)               park
 *                e = word
 *                P2 h = head (seq_cst); moved -> sleepers--, loop
 *                FUTEX_WAITV(word, e); sleepers--
 *   waker:     K1 publish the condition (seq_cst)
 *              K2 load sets (seq_cst); 0 -> done     sb_bell_ring
 *              R1 head++ (seq_cst)                   sb_bell_ring_slow
 *              R2 load sleepers (seq_cst); > 0 -> word++, FUTEX_WAKE
 * Two store->load pairs: (S1, S2) with (K1, K2), and (P1, P2) with (R1,
 * R2). Spin interleaves statements under sequential consistency, which is
 * what seq_cst gives them. The ring's entries are not modelled: a set that
 * sees head move checks its member (what it does, at worst, when an entry
 * is not yet written or was overwritten).
 *
 * The member is a state channel: the condition is a counter, and each
 * check that finds it above the set's mark reports it and moves the mark.
 * The set stops once it has reported the last publication. A set asleep
 * for ever with the condition above its mark is a lost wake-up: an invalid
 * end state. (The library's sleeps also end at every slice, 250 ms, with a
 * full check; the model has no slices, so the bell itself must not lose
 * the wake-up.)
 *
 * Mutants (tests/model/run.sh checks that spin rejects each): a store of
 * one pair sits in its process's store buffer while the process loads:
 *   -DBUG_REGISTER_NO_FENCE  S1 while S2 loads the condition;
 *   -DBUG_PUBLISH_NO_FENCE   K1 while K2 loads sets;
 *   -DBUG_PARK_NO_FENCE      P1 while P2 loads head;
 *   -DBUG_RING_NO_FENCE      R1 while R2 loads sleepers (a locked RMW on
 *                            x86 cannot be delayed so; a release RMW on
 *                            ARM can).
 */
#ifndef PUBS
#define PUBS 2
#endif

byte val = 0;           /* the member's condition: a state's sequence */
byte sets = 0;
byte head = 0;
byte sleepers = 0;
byte word = 0;
bit asleep = 0;
byte mark = 0;          /* the set's: the last sequence reported */

/* Store buffers, one pending store each (the mutants use them). */
bit sbuf_sets = 0, sbuf_sleep = 0, kbuf_val = 0, kbuf_head = 0;

proctype set()
{
	byte cursor, e, h;

	/* S1 */
#ifdef BUG_REGISTER_NO_FENCE
	sbuf_sets = 1;
#else
	sets++;
#endif
	cursor = head;
	/* S2: the pending member is checked after the registration */
	if
	:: val > mark -> mark = val
	:: else -> skip
	fi;
	do
	:: mark == PUBS -> break
	:: else ->
		h = head;
		if
		:: h != cursor ->
			cursor = h;
			if
			:: val > mark -> mark = val
			:: else -> skip
			fi
		:: else ->
			/* P1 */
#ifdef BUG_PARK_NO_FENCE
			atomic { sbuf_sleep == 0 -> sbuf_sleep = 1 };
#else
			sleepers++;
#endif
			e = word;
			/* P2 */
			if
			:: head != cursor -> skip
			:: else ->
				if
				:: atomic { word == e -> asleep = 1 };
				   asleep == 0
				:: word != e -> skip     /* EAGAIN */
				fi
			fi;
			atomic { sbuf_sleep == 0 -> sleepers-- }
		fi
	od
}

proctype waker()
{
	byte n = 0;

	do
	:: n < PUBS ->
		n++;
		/* K1 */
#ifdef BUG_PUBLISH_NO_FENCE
		atomic { kbuf_val == 0 -> kbuf_val = 1 };
#else
		val++;
#endif
		/* K2 */
		if
		:: sets > 0 ->
			/* R1 (a locked RMW: earlier stores drain first) */
#ifdef BUG_RING_NO_FENCE
			atomic { kbuf_val == 0 && kbuf_head == 0 -> kbuf_head = 1 };
#else
			atomic { kbuf_val == 0 -> head++ };
#endif
			/* R2 */
			if
			:: sleepers > 0 -> atomic { word++; asleep = 0 }
			:: else -> skip
			fi
		:: else -> skip
		fi
	:: else -> break
	od
}

/* Drains the store buffers at any time (they always drain eventually). */
proctype flusher()
{
end:
	do
	:: atomic { sbuf_sets == 1 -> sets++; sbuf_sets = 0 }
	:: atomic { sbuf_sleep == 1 -> sleepers++; sbuf_sleep = 0 }
	:: atomic { kbuf_val == 1 -> val++; kbuf_val = 0 }
	:: atomic { kbuf_head == 1 -> head++; kbuf_head = 0 }
	od
}

init
{
	atomic {
		run set();
		run waker();
		run flusher()
	}
}
