/*
 * state.pml -- the state channel's multi-buffered seqlock (src/state.c),
 * checked exhaustively by spin for small bounds.
 *
 * Shared words, as in struct sb_state_ctl and struct sb_state_buf:
 *   pub_seq        the latest complete value s (0: none)
 *   bseq[b]        2s+1 while value s is written into buffer b = s % K,
 *                  2s once complete
 *   data[b*W+i]    the W words of buffer b
 *   waiters        readers announced as (about to be) asleep on pub_seq
 *
 * One writer at a time; the writer may die (SIGKILL) after any single step,
 * and a new writer then takes over from whatever it left: it reads pub_seq
 * and writes s = pub_seq + 1 into buffer s % K, like begin() after
 * claim_writer() took the role from a dead token. Every write attempt gets
 * its own id (wid), written into every data word, so a reader can tell a
 * whole value from a mix of two attempts -- including two attempts at the
 * same s (a writer that died after its even mark but before publishing, and
 * its successor).
 *
 * Readers run read_once() in a loop (shmbus_state_read), and a waiter runs
 * shmbus_state_wait()'s park path (announce, load, futex wait, retract).
 * Checked:
 *   - a reader never accepts a torn value: all words come from one write
 *     attempt, and it is the attempt that published the sequence number the
 *     reader returns;
 *   - the sequence numbers one reader returns never go back;
 *   - with no writer running, the published value is always readable at the
 *     first try (a dead writer leaves the last complete value readable);
 *   - no lost wake-up: a sleeper is woken whenever a newer value exists,
 *     unless the writer that published it died between the publication and
 *     FUTEX_WAKE -- then only its bounded sleep (the liveness timeout, see
 *     shmbus_state_wait) gets it out, which the model shows as a `timeout` wake-up.
 *
 * Spin interleaves whole statements with sequentially consistent memory;
 * what that does and does not prove is in docs/reliability.md.
 *
 * Bounds (override with spin -DK=3 ...): K buffers, W words per value,
 * WRITES write attempts in all, DEATHS writer deaths, READS reads per
 * reader. Readers store nothing shared, so they cannot disturb each other:
 * one reader and one waiter cover every interleaving that matters, and
 * READERS=2 only multiplies the state space.
 *
 * Several writers (-DMANY, SHMBUS_WRITERS_MANY): WRITERS writer processes
 * share the WRITES attempts and the DEATHS deaths. Each write first takes
 * the turn -- the writer word, by CAS from 0 or from a dead holder, as
 * take_turn() does -- and gives it back after publishing; a writer killed
 * anywhere (inside its turn included) ends, and the word keeps its id until
 * another writer finds it dead. Checked on top of the above: while a
 * writer holds its turn nobody else publishes (its value is pub_seq + 1 of
 * the one before, so sequence numbers count the writes), and no writer
 * waits for ever (no invalid end state).
 *
 * Mutants (tests/model/run.sh checks that spin rejects each, so the model
 * can fail): -DBUG_PUBLISH_FIRST publishes pub_seq before the even mark;
 * -DBUG_NO_RECHECK drops the reader's re-check after the copy;
 * -DBUG_NO_ODD never marks the buffer odd while writing; with -DMANY,
 * -DBUG_NO_TURN writes without taking the turn and -DBUG_NO_TAKEOVER never
 * takes the turn from a dead holder.
 */
#ifndef K
#define K 2
#endif
#ifndef W
#define W 2
#endif
#ifndef WRITES
#define WRITES 5
#endif
#ifndef DEATHS
#define DEATHS 2
#endif
#ifndef READS
#define READS 3
#endif
#ifndef READERS
#define READERS 1
#endif
#ifndef WRITERS
#define WRITERS 2
#endif

byte pub_seq;
byte bseq[K];
byte data[K * W];
byte waiters;

#ifdef MANY
byte owner;                /* the writer word: 0 free, else the holder's id */
bool dead[WRITERS + 1];    /* the liveness check's answer, per writer id */
byte attempts, gdeaths;    /* write attempts begun and deaths, shared */
#endif

/* Ghost state for the assertions (not in shared memory). */
byte pubwid[WRITES + 1];   /* pubwid[s]: the attempt that published s */
byte writing;              /* writer incarnations between their first and last step */
bool nowake;               /* a writer died after publishing, before waking */
bool sleeping;             /* the waiter is inside FUTEX_WAIT */
byte wait_newer;           /* the waiter's newer_than */

/* The writer dies here if deaths remain: a SIGKILL between two steps. The
 * next incarnation starts from the top with fresh locals. */
#define DIE(where) \
	if \
	:: deaths < DEATHS -> deaths++; where; goto reborn \
	:: true -> skip \
	fi

#ifndef MANY
active proctype writer()
{
	byte wid = 0, deaths = 0, s, b, i;

reborn:
	writing = false;
	do
	:: wid < WRITES ->
		/* begin(): relaxed load of pub_seq after claiming the role. */
		atomic { writing = true; wid++; s = pub_seq + 1; b = s % K }
		/* relaxed odd mark + release fence */
#ifndef BUG_NO_ODD
		bseq[b] = 2 * s + 1;
		DIE(skip);
#endif
		i = 0;
		do
		:: i < W -> data[b * W + i] = wid; i++; DIE(skip)
		:: else -> break
		od;
		/* publish(): release store of the even mark */
#ifdef BUG_PUBLISH_FIRST
		atomic { pub_seq = s; pubwid[s] = wid };
		DIE(nowake = true);
		bseq[b] = 2 * s;
#else
		bseq[b] = 2 * s;
		DIE(skip);
		/* seq_cst store of pub_seq (pubwid is a ghost of the same step) */
		atomic { pub_seq = s; pubwid[s] = wid };
		DIE(nowake = true);
#endif
		/* seq_cst load of waiters; FUTEX_WAKE all */
		if
		:: waiters > 0 -> sleeping = false
		:: else -> skip
		fi;
		writing = false
	:: else -> break
	od;
	writing = false
}
#else
/* Killed here if deaths remain: the process ends, its id stays in the
 * writer word if it held the turn. */
#define MDIE(where) \
	if \
	:: gdeaths < DEATHS -> gdeaths++; where; atomic { dead[me] = true; writing-- }; goto gone \
	:: true -> skip \
	fi

active [WRITERS] proctype mwriter()
{
	byte me = _pid + 1, wid, s, b, i;

	do
	:: atomic { attempts < WRITES -> attempts++; wid = attempts }
		/* take_turn(): CAS from 0, or from a holder found dead */
#ifndef BUG_NO_TURN
#ifdef BUG_NO_TAKEOVER
		atomic { owner == 0 -> owner = me };
#else
		atomic { (owner == 0 || dead[owner]) -> owner = me };
#endif
#endif
		/* begin(): load of pub_seq, ordered after the turn's acquire */
		atomic { writing++; s = pub_seq + 1; b = s % K };
		MDIE(skip);
#ifndef BUG_NO_ODD
		bseq[b] = 2 * s + 1;
		MDIE(skip);
#endif
		i = 0;
		do
		:: i < W -> data[b * W + i] = wid; i++; MDIE(skip)
		:: else -> break
		od;
#ifdef BUG_PUBLISH_FIRST
		atomic { pub_seq = s; pubwid[s] = wid };
		MDIE(nowake = true);
		bseq[b] = 2 * s;
#else
		bseq[b] = 2 * s;
		MDIE(skip);
		/* nobody published while we held the turn */
		atomic { assert(pub_seq == s - 1); pub_seq = s; pubwid[s] = wid };
		MDIE(nowake = true);
#endif
		if
		:: waiters > 0 -> sleeping = false
		:: else -> skip
		fi;
		/* end_turn(): release CAS back to 0 */
		atomic { owner = (owner == me -> 0 : owner); writing-- }
	:: else -> break
	od;
gone:	skip
}
#endif

/* shmbus_state_read: read_once() until it succeeds. */
proctype reader()
{
	byte s, b, i, n = 0, last = 0;
	byte copy[W];

	do
	:: n < READS ->
again:
		s = pub_seq;                    /* acquire */
		if
		:: s == 0 -> n++; goto next     /* SHMBUS_ENODATA */
		:: else -> skip
		fi;
		b = s % K;
		if
		:: bseq[b] != 2 * s ->          /* acquire */
			/* With no writer at work, the value pub_seq still
			 * names is always there: no retry needed. */
			assert(writing || pub_seq != s);
			goto again
		:: else -> skip
		fi;
		i = 0;
		do
		:: i < W -> copy[i] = data[b * W + i]; i++
		:: else -> break
		od;
		/* acquire fence; relaxed re-check */
#ifndef BUG_NO_RECHECK
		if
		:: bseq[b] != 2 * s -> assert(writing || pub_seq != s); goto again
		:: else -> skip
		fi;
#else
		skip;
#endif
		/* Accepted: whole, the published attempt, not older. The
		 * checks touch only locals; the locals are then cleared so
		 * that spin does not count them as distinct states. */
		d_step {
			i = 1;
			do
			:: i < W -> assert(copy[i] == copy[0]); i++
			:: else -> break
			od;
			assert(copy[0] == pubwid[s]);
			assert(s >= last);
			last = s;
			n++;
			i = 0;
			do
			:: i < W -> copy[i] = 0; i++
			:: else -> break
			od;
			i = 0; b = 0
		}
next:		skip
	:: else -> break
	od
}

/* shmbus_state_wait()'s park (sb_park_*): announce, re-check, sleep while pub_seq is unchanged. */
proctype waiter()
{
	byte s;
	bool timedout;

	wait_newer = pub_seq;
	do
	::
		waiters++;                      /* seq_cst */
		s = pub_seq;                    /* seq_cst */
		if
		:: s <= wait_newer ->
			/* FUTEX_WAIT: sleeps only if the word still holds s. */
			atomic {
				if
				:: pub_seq == s -> sleeping = true
				:: else -> skip
				fi
			};
			if
			:: !sleeping -> skip    /* woken, or never slept */
			:: timeout ->
				/* Nothing else can run, so only the bounded
				 * sleep ends this. Fine if there is no news, or
				 * if its publisher died before waking us. */
				assert(pub_seq <= wait_newer || nowake);
				sleeping = false;
				timedout = true
			fi
		:: else -> skip
		fi;
		waiters--;                      /* relaxed */
		if
		:: pub_seq > wait_newer -> break /* acquire: the news */
		:: else -> skip
		fi;
		if
		:: timedout -> break            /* SHMBUS_ETIMEDOUT */
		:: else -> skip
		fi
	od
}

init
{
	byte r;

	atomic {
		r = 0;
		do
		:: r < READERS -> run reader(); r++
		:: else -> break
		od;
		run waiter()
	}
}
