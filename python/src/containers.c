/* containers.c -- Array and the raw dict/list (filled in when the C side lands). */
#include "sbpy.h"

#define NOT_YET(fn) \
	PyObject *fn(PyObject *self, PyObject *args, PyObject *kw) \
	{ \
		(void)self; (void)args; (void)kw; \
		PyErr_SetString(PyExc_NotImplementedError, "not in this build of the library"); \
		return NULL; \
	}
NOT_YET(sbpy_bus_array)
NOT_YET(sbpy_bus_raw_dict)
NOT_YET(sbpy_bus_raw_list)

int sbpy_containers_init_types(PyObject *m)
{
	(void)m;
	return 0;
}
