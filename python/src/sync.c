/* sync.c -- Lock, Event, Semaphore, Turn (filled in when the C side lands). */
#include "sbpy.h"

#define NOT_YET(fn) \
	PyObject *fn(PyObject *self, PyObject *args, PyObject *kw) \
	{ \
		(void)self; (void)args; (void)kw; \
		PyErr_SetString(PyExc_NotImplementedError, "not in this build of the library"); \
		return NULL; \
	}
NOT_YET(sbpy_bus_lock)
NOT_YET(sbpy_bus_event)
NOT_YET(sbpy_bus_semaphore)
NOT_YET(sbpy_bus_turn)

int sbpy_sync_init_types(PyObject *m)
{
	(void)m;
	return 0;
}
