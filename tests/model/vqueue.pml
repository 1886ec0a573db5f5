/*
 * vqueue.pml -- the variable-length queue ring (multi-slot records), a
 * design checked before it is built: one ring carries records of k >= 1
 * consecutive cells, a record never wraps (a PAD record fills the ring's
 * end), and a dead producer's claim is skipped by the rule below.
 *
 * Shared words:
 *   head            next seq to claim; a claim of n seqs is CAS h -> h+n
 *   mw[i], ml[i]    meta of cell i: the word (s+1 once the record starting
 *                   at seq s is published, | SKIP for a record with no
 *                   message: a producer's PAD or a skipper's SKIP) and the
 *                   record's length in cells. Only a record's first seq has
 *                   its meta written; inner seqs keep older laps' words.
 *   data[i]         the cell's bytes (the model writes s+1, s = the record's
 *                   first seq: a reader that sees anything else read a cell
 *                   that was reused or never written)
 *   ia[p], ib[p]    producer p's intent, two words: its claim's first seq+1
 *                   and its length in seqs (pad included). Stored ib then
 *                   ia (release), before the claim CAS; read ia then ib.
 *   palive[p]       p's token is alive (a death is seen by all at once)
 *   cursor[g]       next seq group g hands out
 *   held[m]         member m's hold (s+1) while it skips seq s (below)
 *
 * Producer: k cells for the message; h = head; pad = SLOTS - h % SLOTS if
 * h % SLOTS + k > SLOTS, else 0. If pad + k <= SLOTS the claim is pad+k
 * seqs (the PAD, then the message); else it is the pad alone, and the
 * message is claimed afterwards from the ring's start. Wait until every
 * seq of the claim is free: last - SLOTS < gate (gate = min over groups of
 * min(cursor, holds - 1), cursors read before holds); store the intent;
 * CAS head h -> h + claim (a failed CAS clears ia, then retries); publish
 * the PAD (len, then word (h+1)|SKIP); write the cells and len k; publish
 * the word m+1 (release).
 *
 * Member (copying take): c = cursor, w = mw[c]; if w == c+1: read len k,
 * check the record lies inside the ring, copy the cells, CAS cursor c ->
 * c+k (a failed CAS drops the copy); if w == (c+1)|SKIP: CAS c -> c+len.
 * Otherwise, at any time, the skip rule (sb_q_skip_abandoned generalised):
 * c < head?; scan the intents: skip c only if a DEAD producer's intent
 * range covers c and no LIVE one does, by L = the smallest c_i + k_i - c
 * over the dead covering ranges, clipped to head; only then read the word
 * p (still unpublished?); take a hold on c (held = c+1, seq_cst), re-read
 * the cursor (still c?, else drop the hold); store ml = L; CAS the word
 * p -> (c+1)|SKIP; drop the hold. A refused skip waits until a retry can
 * end otherwise (the real member retries each liveness timeout).
 *
 * The design as first proposed had four flaws, each found here; the
 * model carries the fixes, and each flaw is a mutant spin must reject:
 * -DBUG_PAD_JOINED  pad and message always one claim: a message of more
 *     than half the ring, at a position where it wraps, needs pad + k >
 *     SLOTS seqs, which the gate never admits (it would overwrite its own
 *     pad): the queue wedges with no death at all;
 * -DBUG_KEEP_FAILED_INTENT  the intent outlives a failed claim CAS: it
 *     covers the winner's claim; if the winner dies there and the loser
 *     must wait for space, its live intent forbids the only skip that
 *     would free it: a wedge for as long as the loser lives;
 * -DBUG_WORD_FIRST  the word read before the liveness scan (as in today's
 *     sb_q_skip_abandoned): the owner may publish its PAD (or message) and
 *     die in between; the skipper's length store, which precedes its
 *     (then failing) CAS, overwrites the PAD's length, and readers pass
 *     the published message behind it: a message lost;
 * -DBUG_SKIP_NO_HOLD  no hold while storing the length: another member
 *     of the group skips c first, the ring turns, and the late length store
 *     lands on the next lap's record in c's cell: a torn message.
 *
 * Producers die (SIGKILL) between any two steps, also while waiting for
 * space, up to PDEATHS times. Ghosts and checks:
 *   - gating: no cell (meta or data) is written while a group still needs
 *     its previous lap; a skipper's length store never lands on a later lap;
 *   - a copy followed by a successful cursor CAS is the whole record it
 *     took (first and last cell, length);
 *   - every record lies inside the ring (no wrap inside a record);
 *   - every published message reaches every group exactly once, in seq
 *     order; a skip passes only seqs claimed by dead producers that never
 *     published the record they belong to, and a PAD its own length;
 *   - no wedge: every process ends (spin's invalid end states), with all
 *     claimed seqs passed by every group.
 * Ghost `ambig`: the skip rule met two dead intents at the same seq with
 * different lengths (one won the CAS, the other lost it, or never tried,
 * and died); -DREACH_AMBIG asserts it never happens, and spin must refute
 * that. Likewise, the cases the fixes are about are shown reached:
 * -DREACH_SPLIT a pad claimed alone; -DREACH_WRAP_SKIP one skip passing a
 * dead claim across the ring's end (its pad and message); -DREACH_SKIP_RACE
 * two skippers racing for the same seq.
 *
 * Mutants of the design's steps (tests/model/run.sh checks each is caught):
 * -DBUG_SKIP_LONGEST  step by the largest covering length;
 * -DBUG_NO_PAD        no pad at the ring's end (a record wraps);
 * -DBUG_GATE_FIRST    the gate checks only the claim's first seq;
 * -DBUG_SKIP_LIVE     the skip ignores live covering intents;
 * -DBUG_STEP_ONE      consumers advance by 1 instead of the length;
 * -DBUG_HOLD_NO_RECHECK  the skipper's hold without the cursor re-read: a
 *     hold taken after the group passed c protects nothing.
 *
 * Bounds: SLOTS cells (any size; the real ring's power of two only makes
 * the index a mask), PRODS producers (2 or 3) sending N0, N1, N2 messages of
 * K0, K1, K2 cells (up to SLOTS; 0: each message 1 or 2 cells, chosen by
 * spin), groups:
 * G0M members in group 0 (1 or 2), G1M in group 1 (0 or 1).
 * Simplifications: members take by copy only (the hold/redelivery path of
 * a take is queue.pml's, unchanged); no member deaths; no shut, joins,
 * epoch or detaching; producer records are never reaped or reused; spin
 * interleaves statements with sequentially consistent memory. The
 * skippers that are not members (a blocked producer, gc) run the
 * member's code with a member record of the group borrowed under the bus
 * mutex (sb_q_pass_dead_claim), so the member here stands for them too.
 * An EARLIEST start and a detached group's floor (record starts found by
 * words, intents and lengths while the group gates below them) are argued
 * in src/queue.c (earliest_start) and src/queue_produce.c (raise_floor),
 * not modelled.
 */
#ifndef SLOTS
#define SLOTS 3
#endif
#ifndef PRODS
#define PRODS 2
#endif
#ifndef N0
#define N0 2
#endif
#ifndef N1
#define N1 1
#endif
#ifndef N2
#define N2 0
#endif
#ifndef K0
#define K0 0
#endif
#ifndef K1
#define K1 2
#endif
#ifndef K2
#define K2 1
#endif
#ifndef G0M
#define G0M 1
#endif
#ifndef G1M
#define G1M 0
#endif
#ifndef PDEATHS
#define PDEATHS 1
#endif

#define M (G0M + G1M)
#if PRODS > 2
#define PN 2
#else
#define PN 1
#endif
#if G0M + G1M > 2
#define MID 1
#else
#define MID 0
#endif
#if G1M > 0
#define G 2
#else
#define G 1
#endif
/* the most seqs the run can claim: each message at most SLOTS - 1 pad
 * cells and KMAX cells of its own (seqs stay below the SKIP bit) */
#if K0 > 2 || K1 > 2 || K2 > 2
#define KMAX SLOTS
#else
#define KMAX 2
#endif
#define NSEQ ((N0 + N1 + N2) * (SLOTS - 1 + KMAX))
#define SKIP 64
#define SEQ(x) ((x) & 63)
#define NONE 255

#ifdef BUG_STEP_ONE
#define STEP(k) 1
#else
#define STEP(k) (k)
#endif

byte head;
byte mw[SLOTS];
byte ml[SLOTS];
byte data[SLOTS];
byte ia[PRODS];
byte ib[PRODS];
bool palive[PRODS];
byte cursor[G];
byte held[M];
byte rgroup[M];

/* Ghosts */
byte owner[NSEQ];             /* producer + 1 whose claim holds the seq */
bool pubd[NSEQ];              /* the record starting at the seq was published */
bool ismsg[NSEQ];             /* a message (not a PAD) starts at the seq */
byte reck[NSEQ];              /* the real length of the record starting there */
byte got[G * NSEQ];           /* deliveries per group and seq */
byte last[G];                 /* seq + 1 of the group's last delivery */
byte pdeaths, pdone;
bool ambig;

/* the cell of seq y is free: every group passed y's previous lap */
#define FREE_CELL(y) ((y) < SLOTS || (cursor[0] > (y) - SLOTS && cursor[G - 1] > (y) - SLOTS))

/* every seq in [x, x+L) is claimed, by a dead producer, and no record
 * starting there was published: nothing a live producer or a reader
 * needs is passed */
#define ASSERT_SAFE_SKIP(x, L) \
	j = 0; \
	do \
	:: j < (L) -> \
		assert((x) + j < head && owner[(x) + j] != 0 && !palive[owner[(x) + j] - 1] && \
		       !pubd[(x) + j]); \
		j++ \
	:: else -> break \
	od; \
	j = 0

/* the skip rule would pass seq x now (a ghost: the rule itself reads one
 * word at a time) */
#define COVERS(i, x) (ia[i] != 0 && ia[i] - 1 <= (x) && (x) < ia[i] - 1 + ib[i])
#define DEADCOV(i, x) (PRODS > (i) && COVERS(i, x) && !palive[i])
#ifdef BUG_SKIP_LIVE
#define LIVECOV(i, x) false
#else
#define LIVECOV(i, x) (PRODS > (i) && COVERS(i, x) && palive[i])
#endif
#define SKIPPABLE(x) ((x) < head && (DEADCOV(0, x) || DEADCOV(1, x) || DEADCOV(PN, x)) && \
	!LIVECOV(0, x) && !LIVECOV(1, x) && !LIVECOV(PN, x))

/* SIGKILL here */
#define PDIE \
	if \
	:: atomic { pdeaths < PDEATHS -> pdeaths++; palive[me] = false }; goto dead \
	:: true -> skip \
	fi

/* ---- producer ------------------------------------------------------ */

proctype producer(byte me; byte n; byte kfix)
{
	byte h, k, kc, pad, gate, g, r, j, m0;
	byte cs[G], hs[M];

	do
	:: n > 0 ->
		if
		:: kfix != 0 -> k = kfix
		:: kfix == 0 -> k = 1
		:: kfix == 0 -> k = 2
		fi;
claim:
		h = head;                                   /* relaxed */
wait:
#ifdef BUG_NO_PAD
		pad = 0;
#else
		pad = (h % SLOTS + k > SLOTS -> SLOTS - h % SLOTS : 0);
#endif
#ifdef BUG_PAD_JOINED
		kc = k;
#else
		/* a pad and the message together would span more than the
		 * ring: claim the pad alone, then the message */
		kc = (pad + k > SLOTS -> 0 : k);
#endif
		/* the gate: cursors first, then the holds (each a load) */
		g = 0;
		do
		:: g < G -> cs[g] = cursor[g]; g++
		:: else -> break
		od;
		r = 0;
		do
		:: r < M -> hs[r] = held[r]; r++
		:: else -> break
		od;
		atomic {
			gate = 255;
			g = 0;
			do
			:: g < G -> if :: cs[g] < gate -> gate = cs[g] :: else fi; g++
			:: else -> break
			od;
			r = 0;
			do
			:: r < M -> if :: hs[r] != 0 && hs[r] - 1 < gate -> gate = hs[r] - 1 :: else fi; r++
			:: else -> break
			od;
			g = 0; r = 0
		};
#ifdef BUG_GATE_FIRST
		if
		:: h < gate + SLOTS -> skip
#else
		if
		:: h + pad + kc - 1 < gate + SLOTS -> skip
#endif
		:: else ->
			/* park until a cursor or a hold moves, then retry with a
			 * fresh head; SIGKILL may come while parked */
			if
			:: atomic { (cursor[0] != cs[0] || cursor[G - 1] != cs[G - 1] ||
			     held[0] != hs[0] || held[M - 1] != hs[M - 1] ||
			     held[MID] != hs[MID]) -> h = head }
			:: atomic { pdeaths < PDEATHS -> pdeaths++; palive[me] = false }; goto dead
			fi;
			goto wait
		fi;
		atomic { gate = 0; cs[0] = 0; cs[G - 1] = 0; hs[0] = 0; hs[M - 1] = 0; hs[MID] = 0 };
		atomic { ib[me] = pad + kc };      /* relaxed */
		PDIE;
		atomic { ia[me] = h + 1 };        /* release */
		PDIE;
		if
		:: atomic { head == h ->                    /* CAS head */
			head = h + pad + kc;
			j = 0;
			do
			:: j < pad + kc -> owner[h + j] = me + 1; j++
			:: else -> break
			od;
			j = 0;
			if
			:: pad > 0 -> reck[h] = pad
			:: else
			fi;
			if
			:: kc > 0 -> reck[h + pad] = k; ismsg[h + pad] = true
			:: else
			fi }
		:: else ->
#ifndef BUG_KEEP_FAILED_INTENT
			PDIE;
			atomic { ia[me] = 0 };    /* release */
#endif
			goto claim
		fi;
		PDIE;
		if
		:: pad > 0 ->
			atomic { assert(FREE_CELL(h)); ml[h % SLOTS] = pad };
			PDIE;
			atomic { assert(FREE_CELL(h)); mw[h % SLOTS] = (h + 1) | SKIP; pubd[h] = true };
			PDIE
		:: else
		fi;
		if
		:: kc == 0 ->
#ifdef REACH_SPLIT
			assert(false);
#endif
			atomic { h = 0; pad = 0 }; goto claim   /* now the message */
		:: else
		fi;
		m0 = h + pad;
		/* the cells and the length (one step: nobody else writes them
		 * while their owner lives) */
		atomic {
			j = 0;
			do
			:: j < k -> assert(FREE_CELL(m0 + j)); data[(m0 + j) % SLOTS] = m0 + 1; j++
			:: else -> break
			od;
			j = 0;
			ml[m0 % SLOTS] = k
		};
		PDIE;
		atomic { assert(FREE_CELL(m0)); mw[m0 % SLOTS] = m0 + 1; pubd[m0] = true }; /* release */
		atomic { n--; h = 0; pad = 0; m0 = 0; k = 0; kc = 0 }
	:: else -> break
	od;
dead:
	atomic { pdone++ }
}

/* ---- member -------------------------------------------------------- */

proctype member(byte me; byte gi)
{
	byte c, w, k, d1, d2, hd, p, i, a, b, L, Lx, j;
	bool live;

	do
	::
		c = cursor[gi];
		if
		:: c >= head && pdone == PRODS -> break     /* all passed */
		:: else
		fi;
		w = mw[c % SLOTS];
		if
		:: w == c + 1 ->
			k = ml[c % SLOTS];
			if
			:: k < 1 || c % SLOTS + k > SLOTS ->
				/* a record lies inside the ring: the length is
				 * checked, as any read from the segment, and a bad
				 * one may only come from a later lap (the group
				 * took c meanwhile) */
				atomic { assert(cursor[gi] != c) }
			:: else ->
				d1 = data[c % SLOTS];
				d2 = data[(c + k - 1) % SLOTS];
				atomic {
					if
					:: cursor[gi] == c ->
						cursor[gi] = c + STEP(k);
						assert(d1 == c + 1 && d2 == c + 1);
						assert(ismsg[c] && pubd[c] && reck[c] == k);
						assert(got[gi * NSEQ + c] == 0 && c + 1 > last[gi]);
						got[gi * NSEQ + c]++;
						last[gi] = c + 1
					:: else
					fi
				}
			fi
		:: w == ((c + 1) | SKIP) ->
			k = ml[c % SLOTS];
			atomic {
				if
				:: cursor[gi] == c ->
					assert(k >= 1);
					if
					:: pubd[c] -> assert(!ismsg[c] && k == reck[c])  /* a PAD */
					:: else -> ASSERT_SAFE_SKIP(c, k)
					fi;
					cursor[gi] = c + STEP(k)
				:: else
				fi
			}
		:: else ->
			/* blocked at c: try the skip rule */
			hd = head;                          /* acquire */
			if
			:: c >= hd -> goto refused
			:: else
			fi;
#ifdef BUG_WORD_FIRST
			p = mw[c % SLOTS];                  /* acquire */
			if
			:: SEQ(p) >= c + 1 -> goto next     /* published meanwhile */
			:: else
			fi;
#endif
			i = 0; live = false; L = NONE; Lx = NONE;
			do
			:: i < PRODS ->
				a = ia[i];                  /* acquire */
				b = ib[i];
				if
				:: a != 0 && a - 1 <= c && c < a - 1 + b ->
					if
					:: palive[i] -> live = true
					:: else ->
						if
						:: Lx != NONE && a == Lx && a - 1 + b - c != L ->
							ambig = true;
#ifdef REACH_AMBIG
							assert(false)
#endif
						:: else
						fi;
#ifdef BUG_SKIP_LONGEST
						if
						:: L == NONE || a - 1 + b - c > L -> L = a - 1 + b - c; Lx = a
						:: else
						fi
#else
						if
						:: L == NONE || a - 1 + b - c < L -> L = a - 1 + b - c; Lx = a
						:: else
						fi
#endif
					fi
				:: else
				fi;
				i++
			:: else -> break
			od;
			atomic { i = 0; a = 0; b = 0; Lx = 0 };
#ifdef BUG_SKIP_LIVE
			live = false;
#endif
			if
			:: live || L == NONE -> goto refused
			:: else
			fi;
#ifndef BUG_WORD_FIRST
			/* the word, read after the owner was found dead: if it is
			 * unpublished now, it stays so (only skippers write it) */
			p = mw[c % SLOTS];                  /* acquire */
			if
			:: SEQ(p) >= c + 1 -> goto next     /* published meanwhile */
			:: else
			fi;
#endif
			if
			:: L > hd - c -> L = hd - c
			:: else
			fi;
#ifndef BUG_SKIP_NO_HOLD
			atomic { held[me] = c + 1 };  /* seq_cst */
#ifndef BUG_HOLD_NO_RECHECK
			if
			:: cursor[gi] != c ->
				atomic { held[me] = 0 };
				goto next
			:: else
			fi;
#endif
#endif
			/* the length, then the word */
			atomic { assert(head <= c + SLOTS); ml[c % SLOTS] = L };
			atomic {
				if
				:: mw[c % SLOTS] == p ->
					assert(FREE_CELL(c) && head <= c + SLOTS);
					ASSERT_SAFE_SKIP(c, L);
#ifdef REACH_WRAP_SKIP
					assert(c % SLOTS + L <= SLOTS);
#endif
					mw[c % SLOTS] = (c + 1) | SKIP
				:: else
#ifdef REACH_SKIP_RACE
					assert(mw[c % SLOTS] != ((c + 1) | SKIP));
#endif
				fi
			};
#ifndef BUG_SKIP_NO_HOLD
			atomic { held[me] = 0 };
#endif
			goto next;
refused:
			/* wait until a retry can have another outcome (the real
			 * member retries every liveness timeout; on the same
			 * state a retry gives the same answer) */
			(mw[c % SLOTS] != w || cursor[gi] != c || (pdone == PRODS && c >= head) ||
			 SKIPPABLE(c));
next:
			skip;
			atomic { hd = 0; p = 0; L = 0; live = false }
		fi;
		atomic { c = 0; w = 0; k = 0; d1 = 0; d2 = 0 }
	od
}

init
{
	byte i, g;

	atomic {
		i = 0;
		do
		:: i < PRODS -> palive[i] = true; i++
		:: else -> break
		od;
		i = 0;
		do
		:: i < M -> rgroup[i] = (i < G0M -> 0 : 1); i++
		:: else -> break
		od;
		run producer(0, N0, K0);
		run producer(1, N1, K1);
		if
		:: PRODS > 2 -> run producer(2, N2, K2)
		:: else
		fi;
		i = 0;
		do
		:: i < M -> run member(i, rgroup[i]); i++
		:: else -> break
		od
	};
	/* every process ended (a wedge is an invalid end state before this) */
	(_nr_pr == 1);
	d_step {
		g = 0;
		do
		:: g < G ->
			assert(cursor[g] == head);
			i = 0;
			do
			:: i < head ->
				/* each published message was delivered once */
				assert(!(ismsg[i] && pubd[i]) || got[g * NSEQ + i] == 1);
				i++
			:: else -> break
			od;
			g++
		:: else -> break
		od
	}
}
