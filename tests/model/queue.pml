/*
 * queue.pml -- the queue ring of src/queue*.c (claim, publish, gating,
 * take, release, redelivery after a member's death, skipping a dead
 * producer's claim), checked exhaustively by spin for small bounds.
 *
 * Shared words, as in struct sb_q_ctl / sb_q_slot / sb_q_group / sb_q_member:
 *   head            next seq to claim (producers CAS head -> head+1)
 *   pub[i]          s+1 once message s is in slot i = s % SLOTS, or
 *                   (s+1) | SKIP when s carries no message
 *   data[i]         the payload (the model writes s+1: a reader that sees
 *                   anything else read a slot that was reused or unwritten)
 *   intent[p]       s+1 before producer p claims s (traces a claim to it);
 *                   0 again after a failed claim CAS, and at close
 *   ptok[p]         producer record p: OWNED until closed or reaped
 *   palive[p]       p's token is alive (a death is seen by all at once)
 *   cursor[g]       next seq group g hands out
 *   rtok[r]         member record r: OWNED / ORPHAN / FREE
 *   rown[r]         the member process owning record r (its token)
 *   held[r]         s+1 of the message record r holds, | TENT while trying
 *
 * Producer (claim() / sb_q_gate / sb_q_publish): load head; while the slot
 * would overwrite what a group still needs (h - gate >= SLOTS, gate = min
 * over groups of min(cursor, holds - 1), cursors read before holds), wait;
 * store intent; CAS head (a failed CAS clears the intent, then starts
 * again from the head); write data; publish (release). Close: intent 0,
 * record freed.
 *
 * Member (take_one / adopt / drop_hold): adopt an orphan record of its
 * group (redelivery if the dead owner's hold was confirmed and the cursor
 * passed it); else c = cursor, p = pub[c % SLOTS]; if p == c+1: announce
 * held = c+1|TENT, re-read the cursor (still c?), confirm held = c+1, CAS
 * cursor c -> c+1, read the data, release (held = 0). A SKIP is passed by
 * CAS. A missing seq c is skipped by the C's rule (sb_q_skip_abandoned):
 * c < head, its word unpublished, no record of a live producer names c+1
 * (the scan reads the records one at a time, then CASes the word) and
 * its slot is free; no dead record needs to name it. A dead member's
 * record is reaped by a live one (sb_q_reap_members): an orphan if its
 * hold was confirmed, else freed. A dead producer's record is reaped by a
 * member too (sb_q_reap_producers, which also runs in attach and gc): it
 * tries the skip of the seq the intent names, then frees the record
 * whether or not the skip could happen.
 *
 * Members of group 0 and producers may die (SIGKILL) between any two
 * steps, up to MDEATHS and PDEATHS times. Checked:
 *   - a slot is never rewritten while a member is reading it, nor before
 *     every group took the message it held (gating);
 *   - a member never reads data other than the message it took;
 *   - every published message reaches every group (lossless), once, or
 *     again flagged as redelivered only when a member died holding it;
 *   - order: a group of one member gets first deliveries in seq order;
 *   - a skip never passes a live producer's claim (ghost owner[s], set by
 *     the claiming CAS), and every claim of a dead producer is passed: no
 *     deadlock, every process ends (spin's invalid end states).
 * Simplifications: a fixed set of groups present from the start (no join
 * race, epoch, detaching or floor: so no claim whose slot is not free,
 * which tests/fault/queue_reaped_claim.c covers), no shut, at most 3
 * producers; a member tries the skip whenever the rule holds (the C tries
 * once per liveness timeout); spin interleaves statements
 * with sequentially consistent memory (docs/reliability.md).
 *
 * Copying take (take_copy, for get and get_many): with no hold, copy the
 * slot, then CAS cursor c -> c+1; a member chooses it or the hold path at
 * each take. Checked: a successful CAS follows a copy of message c whole
 * (its first and last reads both saw it), delivered once.
 *
 * Mutants (tests/model/run.sh checks spin rejects each):
 * -DBUG_GATE_NO_HOLDS leaves member holds out of the gate;
 * -DBUG_HOLDS_FIRST reads the holds before the cursors;
 * -DBUG_COPY_AFTER_TAKE copies after advancing the cursor, with no hold;
 * -DBUG_KEEP_FAILED_INTENT keeps the intent after a failed claim CAS (the
 *     C before the fix): the loser, waiting for space, names the seq its
 *     winner claimed; if the winner dies there, no skip passes the seq
 *     and the loser waits behind it for ever (1 slot and 2 producers, or
 *     2 slots and 3 producers, one death);
 * -DBUG_REAP_FORGETS makes the skip need a dead record naming the seq: a
 *     reaper that frees the dead winner's record while a live loser still
 *     names the seq (its CAS not yet failed) leaves a seq nobody may skip;
 * -DBUG_SKIP_LIVE ignores live records: the ghost check fires.
 *
 * Bounds: SLOTS, N messages in all (split over PRODS producers), groups
 * G0M members in group 0 and G1M in group 1.
 */
#ifndef SLOTS
#define SLOTS 2
#endif
#ifndef N
#define N 3
#endif
#ifndef PRODS
#define PRODS 2
#endif
#ifndef G0M
#define G0M 2
#endif
#ifndef G1M
#define G1M 1
#endif
#ifndef MDEATHS
#define MDEATHS 1
#endif
#ifndef PDEATHS
#define PDEATHS 0
#endif

#define M (G0M + G1M)
#if PRODS > 3
#error "the skip rule below reads records 0..2"
#endif
#define PMAX 3
#ifdef BUG_GATE_NO_HOLDS
#define GATE_NO_HOLDS true
#else
#define GATE_NO_HOLDS false
#endif
#if G1M > 0
#define G 2
#define CUR1(c) cursor[1] > (c)
#else
#define G 1
#define CUR1(c) true
#endif
#define SKIP 64
#define TENT 64
#define SEQ(x) ((x) & 63)
#define FREE 0
#define OWNED 1
#define ORPHAN 2

/* sb_q_skip_abandoned's rule for seq x: claimed (x < head), unpublished,
 * its slot free (every group passed x's previous lap, nobody reads it),
 * and no record of a live producer names it. No dead record needs to name
 * it (its record may have been reaped); -DBUG_REAP_FORGETS asks for one,
 * as a rule that traced the claim to a dead record would. */
#ifdef BUG_SKIP_LIVE
#define LIVE_NAMES(r, x) false
#else
#define LIVE_NAMES(r, x) (ptok[r] == OWNED && palive[r] && intent[r] == (x) + 1)
#endif
#define DEAD_NAMES(r, x) (ptok[r] == OWNED && !palive[r] && intent[r] == (x) + 1)
#define SLOT_FREE(x) ((x) < SLOTS || (cursor[0] > (x) - SLOTS && CUR1((x) - SLOTS) && \
	reading[(x) % SLOTS] == 0))
#ifdef BUG_REAP_FORGETS
#define NEEDS_DEAD(x) (DEAD_NAMES(0, x) || DEAD_NAMES(1, x) || DEAD_NAMES(2, x))
#else
#define NEEDS_DEAD(x) true
#endif
#define SKIPPABLE(x) ((x) < head && SEQ(pub[(x) % SLOTS]) < (x) + 1 && \
	!LIVE_NAMES(0, x) && !LIVE_NAMES(1, x) && !LIVE_NAMES(2, x) && NEEDS_DEAD(x) && SLOT_FREE(x))
/* the skip itself (the CAS on the slot word): never of a live producer's
 * claim (the ghost owner) */
#define DO_SKIP(x) \
	assert(owner[x] != 0 && !palive[owner[x] - 1]); \
	pub[(x) % SLOTS] = ((x) + 1) | SKIP; skipped++; skp[x] = true

byte head;
byte pub[SLOTS];
byte data[SLOTS];
byte intent[PMAX];            /* records past PRODS stay FREE */
bool palive[PMAX];
byte ptok[PMAX];              /* producer record: OWNED / FREE */
byte cursor[G];
byte rtok[M];
byte rown[M];
byte rgroup[M];
byte held[M];
bool malive[M];

/* Ghosts */
byte reading[SLOTS];          /* members inside their read of a slot */
byte got[G * N];              /* deliveries per group and seq */
byte again[G * N];            /* flagged redeliveries */
bool diedholding[G * N];      /* a member died holding that seq */
byte lastfirst[G];            /* highest seq delivered first time + 1 */
byte mdeaths, pdeaths, produced, skipped;
bool skp[N];
byte owner[N];                /* producer + 1 whose CAS claimed the seq */
byte done, pdone;
bool mfin[M];
byte rd[M];

/* ---- producer ------------------------------------------------------ */

/* A hold changed since the gate was computed (coarse: any hold gone or
 * any record freed lets the gate be recomputed). */
#define HOLDS_MOVED (snap != ((held[0] & 127) + (M > 1 -> (held[1] & 127) * 3 : 0) + \
	(M > 2 -> (held[2] & 127) * 9 : 0) + rtok[0] * 27 + (M > 1 -> rtok[1] * 81 : 0) + \
	(M > 2 -> rtok[2] * 243 : 0)))

proctype producer(byte me; byte count)
{
	byte h, gate, pos[G], g, r, k = 0;
	byte hpos[G], hv;
	int snap;

	do
	:: k < count ->
claim:
		h = head;                                   /* relaxed */
		/* wait_space: recompute the gate until h fits */
		do
		::
			snap = (held[0] & 127) + (M > 1 -> (held[1] & 127) * 3 : 0) +
			       (M > 2 -> (held[2] & 127) * 9 : 0) + rtok[0] * 27 +
			       (M > 1 -> rtok[1] * 81 : 0) + (M > 2 -> rtok[2] * 243 : 0);
#ifdef BUG_HOLDS_FIRST
			g = 0;
			do
			:: g < G -> hpos[g] = 255; g++
			:: else -> break
			od;
			r = 0;
			do                                  /* then the holds */
			:: r < M ->
				hv = held[r];               /* one seq_cst load */
				if
				:: rtok[r] != FREE && SEQ(hv) != 0 &&
				   SEQ(hv) - 1 < hpos[rgroup[r]] && !GATE_NO_HOLDS ->
					hpos[rgroup[r]] = SEQ(hv) - 1
				:: else -> skip
				fi;
				hv = 0;
				r++
			:: else -> break
			od;
			g = 0;
			do
			:: g < G -> pos[g] = (cursor[g] < hpos[g] -> cursor[g] : hpos[g]); hpos[g] = 255; g++
			:: else -> break
			od;
#else
			g = 0;
			do                                  /* cursors first */
			:: g < G -> pos[g] = cursor[g]; g++
			:: else -> break
			od;
			r = 0;
			do                                  /* then the holds */
			:: r < M ->
				hv = held[r];               /* one seq_cst load */
				if
				:: rtok[r] != FREE && SEQ(hv) != 0 &&
				   SEQ(hv) - 1 < pos[rgroup[r]] && !GATE_NO_HOLDS ->
					pos[rgroup[r]] = SEQ(hv) - 1
				:: else -> skip
				fi;
				hv = 0;
				r++
			:: else -> break
			od;
#endif
			gate = h;
			g = 0;
			do
			:: g < G -> if :: pos[g] < gate -> gate = pos[g] :: else -> skip fi; g++
			:: else -> break
			od;
			if
			:: h < gate || h - gate < SLOTS -> break
			:: else ->
				/* park until a cursor or a hold moves (futex), then
				 * recompute with a fresh head */
				atomic { (cursor[0] != pos[0] || (G > 1 && cursor[G - 1] != pos[G - 1]) ||
				  HOLDS_MOVED) ; h = head }
			fi
		od;
		skip;
		d_step { g = 0; r = 0; gate = 0; pos[0] = 0; pos[G - 1] = 0; snap = 0 };
		intent[me] = h + 1;                         /* release */
		if
		:: atomic { pdeaths < PDEATHS -> pdeaths++; palive[me] = false }; goto dead
		:: true -> skip
		fi;
		if
		:: atomic { head == h -> head = h + 1; owner[h] = me + 1 }   /* CAS head */
		:: atomic { head != h -> h = 0 } ->
#ifndef BUG_KEEP_FAILED_INTENT
			intent[me] = 0;                     /* the failed claim's */
#endif
			goto claim
		fi;
		if
		:: atomic { pdeaths < PDEATHS -> pdeaths++; palive[me] = false }; goto dead
		:: true -> skip
		fi;
		/* gating safety: nobody reads the slot, and every group took
		 * the message that was in it */
		atomic {
			assert(reading[h % SLOTS] == 0);
			g = 0;
			do
			:: g < G -> assert(h < SLOTS || cursor[g] > h - SLOTS); g++
			:: else -> break
			od;
			data[h % SLOTS] = h + 1
		};
		atomic { pub[h % SLOTS] = h + 1; produced++ }  /* release */
		k++
	:: else -> break
	od;
	atomic { intent[me] = 0; ptok[me] = FREE };  /* close */
dead:
	pdone++;
	done++
}

/* ---- member -------------------------------------------------------- */

/* Deliver seq s: the read (ghost bookkeeping) and the release. */
#define DELIVER(s, flagged) \
	atomic { \
		reading[(s) % SLOTS]++; rd[me] = (s) % SLOTS + 1; \
		assert(data[(s) % SLOTS] == (s) + 1); \
		if \
		:: flagged -> again[gi * N + (s)]++; assert(diedholding[gi * N + (s)]) \
		:: else -> \
			assert(got[gi * N + (s)] == 0); \
			assert(gi != 1 || (s) + 1 > lastfirst[gi]); \
			lastfirst[gi] = (s) + 1 \
		fi; \
		got[gi * N + (s)]++ \
	}; \
	MDIE; \
	atomic { reading[(s) % SLOTS]--; rd[me] = 0; held[my] = 0 }

/* A copying take returned seq s: both reads of the copy saw message s,
 * and it is a first delivery (ghost bookkeeping as in DELIVER). */
#define COPY_DELIVERED(s) \
	assert(d1 == (s) + 1 && d2 == (s) + 1); \
	assert(got[gi * N + (s)] == 0); \
	assert(gi != 1 || (s) + 1 > lastfirst[gi]); \
	lastfirst[gi] = (s) + 1; \
	got[gi * N + (s)]++

/* SIGKILL here (only members of group 0; group 1's single member is never
 * killed, since a dead group stops gating only through detaching, which
 * this model leaves out). */
#define MDIE \
	if \
	:: atomic { gi == 0 && mdeaths < MDEATHS -> \
			mdeaths++; malive[me] = false; \
			if \
			:: SEQ(held[my]) != 0 && !(held[my] & TENT) -> \
				diedholding[gi * N + SEQ(held[my]) - 1] = true \
			:: else -> skip \
			fi; \
			if \
			:: rd[me] != 0 -> reading[rd[me] - 1]--; rd[me] = 0 \
			:: else -> skip \
			fi \
		}; \
		goto dead \
	:: true -> skip \
	fi

/* Record r is settled for an exiting member: free, an orphan of another
 * group, or owned by a live member of another group or one that finished. */
#define SETTLED(r) (r >= M || rgroup[r] != gi || rtok[r] == FREE || \
	(rtok[r] == OWNED && (rown[r] == me || mfin[rown[r]])))

proctype member(byte me; byte gi)
{
	byte my = me, c, p, r, hd, s, d1, d2;
	bool adopted;

	do
	::
		/* reap dead members of our group (sb_q_reap_members; one CAS
		 * per record, done here as one step) */
		d_step {
			r = 0;
			do
			:: r < M ->
				if
				:: rtok[r] == OWNED && !malive[rown[r]] && rgroup[r] == gi ->
					if
					:: SEQ(held[r]) != 0 && !(held[r] & TENT) -> rtok[r] = ORPHAN
					:: else -> rtok[r] = FREE
					fi
				:: else -> skip
				fi;
				r++
			:: else -> break
			od;
			r = 0
		};
		/* reap dead producers' records (sb_q_reap_producers): try to
		 * skip the seq the intent names, then free the record even if
		 * the skip could not happen */
		atomic {
			r = 0;
			do
			:: r < PMAX ->
				if
				:: ptok[r] == OWNED && !palive[r] ->
					if
					:: intent[r] != 0 && SKIPPABLE(intent[r] - 1) ->
						s = intent[r] - 1;
						DO_SKIP(s);
						s = 0
					:: else -> skip
					fi;
					ptok[r] = FREE
				:: else -> skip
				fi;
				r++
			:: else -> break
			od;
			r = 0
		};
		/* adopt an orphan of our group (adopt(): the CAS ORPHAN -> us) */
		atomic {
			r = 0;
			do
			:: r < M && !(rtok[r] == ORPHAN && rgroup[r] == gi) -> r++
			:: else -> break
			od;
			if
			:: r < M -> rtok[r] = OWNED; rown[r] = me; adopted = true
			:: else -> r = 0
			fi
		};
		if
		:: adopted ->
			adopted = false;
			atomic { held[my] = 0; rtok[my] = FREE };
			my = r;
			hd = held[r];
			if
			:: hd != 0 && !(hd & TENT) && cursor[gi] > hd - 1 &&
			   pub[(hd - 1) % SLOTS] == hd ->
				s = hd - 1;
				DELIVER(s, true)
			:: else -> held[my] = 0         /* drop_hold */
			fi;
			hd = 0; s = 0
		:: else -> skip
		fi;
		r = 0;
		/* take_one */
		c = cursor[gi];
		if
		:: c >= N || (pdone == PRODS && c >= head) ->
			/* all taken: leave once no record of our group is left
			 * to reap or adopt */
			if
			:: atomic { SETTLED(0) && SETTLED(1) && SETTLED(2) && SETTLED(3) ->
				mfin[me] = true } -> break
			:: else -> skip
			fi
		:: else ->
			p = pub[c % SLOTS];
			if
			:: p == c + 1 && !(held[my] & TENT) ->
				/* take_copy (get, get_many): copy the slot, then
				 * CAS the cursor; no hold. The copy is two reads (its
				 * first and last word); another member may take c
				 * and a producer reuse the slot meanwhile, which
				 * only a failed CAS may follow. */
#ifndef BUG_COPY_AFTER_TAKE
				d1 = data[c % SLOTS];
				MDIE;
				d2 = data[c % SLOTS];
				MDIE;
#endif
				if
				:: atomic { cursor[gi] == c -> cursor[gi] = c + 1
#ifndef BUG_COPY_AFTER_TAKE
					; COPY_DELIVERED(c)
#endif
					}
#ifdef BUG_COPY_AFTER_TAKE
					; d1 = data[c % SLOTS]; MDIE; d2 = data[c % SLOTS];
					atomic { COPY_DELIVERED(c) }
#endif
				:: else -> skip
				fi;
				d1 = 0; d2 = 0
			:: p == c + 1 ->
				held[my] = (c + 1) | TENT;  /* seq_cst exchange */
				MDIE;
				if
				:: cursor[gi] != c -> skip  /* continue (still tentative) */
				:: else ->
					held[my] = c + 1;   /* confirm */
					MDIE;
					if
					:: atomic { cursor[gi] == c -> cursor[gi] = c + 1 } ->
						MDIE;
						DELIVER(c, false)
					:: else -> skip
					fi
				fi
			:: p == ((c + 1) | SKIP) ->
				atomic { if :: cursor[gi] == c -> cursor[gi] = c + 1 :: else -> skip fi }
			:: else ->
				if
				:: held[my] & TENT -> held[my] = 0      /* drop_hold */
				:: else -> skip
				fi;
				/* park until the slot or the cursor changes, a record
				 * needs reaping, or the claim of c is abandoned: its
				 * claimant is dead and the slot is free
				 * (sb_q_skip_abandoned) */
				if
				:: pub[c % SLOTS] != p -> skip
				:: cursor[gi] != c -> skip
				:: pdone == PRODS -> skip
				:: (rtok[0] == OWNED && !malive[rown[0]]) ||
				   (M > 1 && rtok[1] == OWNED && !malive[rown[1]]) ||
				   (M > 2 && rtok[2] == OWNED && !malive[rown[2]]) -> skip
				:: (ptok[0] == OWNED && !palive[0]) || (ptok[1] == OWNED && !palive[1]) ||
				   (ptok[2] == OWNED && !palive[2]) -> skip
				:: SKIPPABLE(c) ->
					/* sb_q_skip_abandoned, once the rule holds (the
					 * real member retries each liveness timeout): it
					 * reads head and the word, then the records one by
					 * one, and CASes the word (which fails if it
					 * changed) if none names c for a live producer and
					 * the slot is free */
					r = 0;
					do
					:: r < PMAX && LIVE_NAMES(r, c) -> break
					:: r < PMAX && !LIVE_NAMES(r, c) -> r++
					:: r == PMAX -> break
					od;
					atomic {
						if
						:: r == PMAX && SEQ(pub[c % SLOTS]) < c + 1 && SLOT_FREE(c) &&
						   NEEDS_DEAD(c) ->
							DO_SKIP(c)
						:: else -> skip
						fi;
						r = 0
					}
				fi
			fi
		fi
	od;
dead:
	done++
}

init
{
	byte i, k;

	atomic {
		k = 0;
		do
		:: k < PRODS -> palive[k] = true; ptok[k] = OWNED; k++
		:: else -> break
		od;
		i = 0;
		do
		:: i < M ->
			rtok[i] = OWNED; rown[i] = i; malive[i] = true;
			rgroup[i] = (i < G0M -> 0 : 1);
			i++
		:: else -> break
		od;
		k = 0;
		do
		:: k < PRODS -> run producer(k, N / PRODS + (k < N % PRODS -> 1 : 0)); k++
		:: else -> break
		od;
		i = 0;
		do
		:: i < M -> run member(i, rgroup[i]); i++
		:: else -> break
		od
	};
	/* all done: lossless delivery to every group */
	(done == PRODS + M);
	atomic {
		k = 0;
		do
		:: k < G ->
			i = 0;
			do
			:: i < head ->
				/* each claimed seq was published and delivered, or
				 * skipped because its producer died */
				assert(got[k * N + i] > 0 || skp[i]);
				i++
			:: else -> break
			od;
			k++
		:: else -> break
		od
	}
}
