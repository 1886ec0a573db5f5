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
 *   intent[p]       s+1 before producer p claims s (traces a claim to it)
 *   cursor[g]       next seq group g hands out
 *   rtok[r]         member record r: OWNED / ORPHAN / FREE
 *   rown[r]         the member process owning record r (its token)
 *   held[r]         s+1 of the message record r holds, | TENT while trying
 *
 * Producer (claim() / sb_q_gate / sb_q_publish): load head; while the slot
 * would overwrite what a group still needs (h - gate >= SLOTS, gate = min
 * over groups of min(cursor, holds - 1), cursors read before holds), wait;
 * store intent; CAS head; write data; publish (release).
 *
 * Member (take_one / adopt / drop_hold): adopt an orphan record of its
 * group (redelivery if the dead owner's hold was confirmed and the cursor
 * passed it); else c = cursor, p = pub[c % SLOTS]; if p == c+1: announce
 * held = c+1|TENT, re-read the cursor (still c?), confirm held = c+1, CAS
 * cursor c -> c+1, read the data, release (held = 0). A SKIP is passed by
 * CAS. A missing seq whose claimant is dead is skipped
 * (sb_q_skip_abandoned). A dead member's record is reaped by a live one
 * (sb_q_reap_members): an orphan if its hold was confirmed, else freed.
 *
 * Members of group 0 and producers may die (SIGKILL) between any two
 * steps, up to MDEATHS and PDEATHS times. Checked:
 *   - a slot is never rewritten while a member is reading it, nor before
 *     every group took the message it held (gating);
 *   - a member never reads data other than the message it took;
 *   - every published message reaches every group (lossless), once, or
 *     again flagged as redelivered only when a member died holding it;
 *   - order: a group of one member gets first deliveries in seq order;
 *   - no deadlock: every process ends (spin's invalid end states).
 * Simplifications: a fixed set of groups present from the start (no join
 * race, epoch, detaching or floor), no shut; spin interleaves statements
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
 * -DBUG_COPY_AFTER_TAKE copies after advancing the cursor, with no hold.
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

byte head;
byte pub[SLOTS];
byte data[SLOTS];
byte intent[PRODS];
bool palive[PRODS];
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
		atomic {                                    /* CAS head */
			if
			:: head == h -> head = h + 1
			:: else -> goto claim
			fi
		};
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
				:: atomic { c < head && SEQ(pub[c % SLOTS]) < c + 1 &&
				   ((!palive[0] && intent[0] == c + 1) ||
				    (PRODS > 1 && !palive[PRODS - 1] && intent[PRODS - 1] == c + 1)) &&
				   (c < SLOTS || (cursor[0] > c - SLOTS && CUR1(c - SLOTS) &&
				    reading[c % SLOTS] == 0)) ->
					pub[c % SLOTS] = (c + 1) | SKIP; skipped++; skp[c] = true }
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
		:: k < PRODS -> palive[k] = true; k++
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
