/*
 * wait.pml -- the park primitive of src/wait.c: no lost wake-up, checked
 * exhaustively by spin, with the store buffers that a missing fence would
 * let the hardware use.
 *
 * Every blocking kind waits the same way (wait.c's header comment):
 *   waiter:  W1 announce (count++, seq_cst)      sb_park_prepare
 *            e = word
 *            W2 re-check the condition (seq_cst)
 *            FUTEX_WAIT(word, e) if still false  sb_park_sleep
 *            count--                             sb_park_cancel
 *   waker:   K1 publish the condition (seq_cst)
 *            K2 load count (seq_cst); if non-zero, change word and
 *               FUTEX_WAKE                        sb_park_wake
 * Spin interleaves statements under sequential consistency, which is what
 * seq_cst gives these four accesses. To show that the ordering is needed,
 * each store that a fence would order before the following load goes
 * through a store buffer (x86-TSO, the weakest order x86 has; ARM allows
 * more): the mutants leave a store in the buffer while the same process
 * loads, and a flusher drains it at any later time.
 *
 * FUTEX_WAIT is one atomic step: compare the word, sleep if equal. FUTEX_WAKE
 * wakes every sleeper. A waiter asleep for ever while the condition holds is
 * a lost wake-up: spin reports it as an invalid end state. (The library's
 * sleeps are also cut into slices, which would end it after 250 ms; the
 * model has no slices, so the protocol itself must not lose the wake-up.)
 *
 * Bounds: WAITERS waiters (1-2), PUBS publications (the condition is a
 * counter; waiter i waits for it to pass TARGET(i), so that with two
 * publications one waiter is served by the first and one by the second).
 *
 * Mutants (tests/model/run.sh checks that spin rejects each):
 *   -DBUG_WAITER_NO_FENCE  the waiter's announce may sit in its store buffer
 *                          while it re-checks the condition;
 *   -DBUG_WAKER_NO_FENCE   the waker's publication may sit in its store
 *                          buffer while it loads the count.
 */
#ifndef WAITERS
#define WAITERS 2
#endif
#ifndef PUBS
#define PUBS 2
#endif

#define TARGET(i) ((i) % PUBS)

byte val = 0;           /* the condition: a counter the waker raises */
byte word = 0;          /* the futex word (an event count) */
byte count = 0;         /* waiters announced */
byte asleep = 0;        /* bit i: waiter i sleeps in FUTEX_WAIT */

/* Store buffers, one pending store each (the mutants use them). */
byte wbuf[2];          /* waiter i's count++ not yet visible */
byte kbuf = 0;          /* the waker's val++ not yet visible */

proctype waiter(byte i)
{
	byte e;

	do
	:: val > TARGET(i) -> break
	:: else ->
		/* W1: announce */
#ifdef BUG_WAITER_NO_FENCE
		wbuf[i] = 1;
#else
		count++;
#endif
		e = word;
		/* W2: re-check, then FUTEX_WAIT(word, e) as one step */
		if
		:: val > TARGET(i) -> skip
		:: else ->
			if
			:: atomic { word == e -> asleep = asleep | (1 << i) };
			   (asleep & (1 << i)) == 0
			:: word != e -> skip         /* word changed: EAGAIN */
			fi
		fi;
		/* cancel: the announce must be visible before it is retracted */
		atomic { wbuf[i] == 0 -> count-- }
	od
}

proctype waker()
{
	byte n = 0;

	do
	:: n < PUBS ->
		n++;
		/* K1: publish */
#ifdef BUG_WAKER_NO_FENCE
		atomic { kbuf == 0 -> kbuf = 1 };
#else
		val++;
#endif
		/* K2: wake if anyone may sleep */
		if
		:: count > 0 -> atomic { word++; asleep = 0 }
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
	:: atomic { kbuf == 1 -> val++; kbuf = 0 }
	:: atomic { wbuf[0] == 1 -> count++; wbuf[0] = 0 }
	:: atomic { wbuf[1] == 1 -> count++; wbuf[1] = 0 }
	od
}

init
{
	byte i = 0;

	atomic {
		do
		:: i < WAITERS -> run waiter(i); i++
		:: else -> break
		od;
		run waker();
		run flusher()
	}
}
