/* A UUID's 16 bytes from C, for shredstore's two C modules (storage/native.c, mapping/native.c).
 */
#ifndef SHREDSTORE_NATIVE_UUID_H
#define SHREDSTORE_NATIVE_UUID_H

#include <Python.h>

/* The UUID's 16 bytes, big-endian (its `bytes`), into `out`; -1 with an error set if it has
 * no `int` (`name`, interned by the caller) of 128 bits: OverflowError, as int.to_bytes(16),
 * if it is negative or too large. */
static int uuid_bytes(PyObject *uuid, PyObject *name, unsigned char *out)
{
    PyObject *value = PyObject_GetAttr(uuid, name);
    if (value == NULL)
        return -1;
    unsigned long long low = PyLong_AsUnsignedLongLongMask(value);
    PyObject *shift = PyLong_FromLong(64);
    PyObject *high_value = shift == NULL ? NULL : PyNumber_Rshift(value, shift);
    Py_XDECREF(shift);
    Py_DECREF(value);
    if (high_value == NULL)
        return -1;
    unsigned long long high = PyLong_AsUnsignedLongLong(high_value);
    Py_DECREF(high_value);
    if ((high == (unsigned long long)-1 || low == (unsigned long long)-1) && PyErr_Occurred())
        return -1;
    for (int i = 0; i < 8; i++) {
        out[7 - i] = (unsigned char)(high >> (8 * i));
        out[15 - i] = (unsigned char)(low >> (8 * i));
    }
    return 0;
}

#endif
