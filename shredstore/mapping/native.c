/* shredstore.mapping.native: the usual case of opening a record's personal groups, in C.
 *
 * open_groups does what the loop of shredstore/mapping/sealing.py's `open_groups` does (that
 * Python code stays the reference and the fallback) for the groups every append writes: each
 * a sealed value for one subject, with paths of one field name each. Any other column (a
 * redacted group, a nested path, a value of another type) is left to the Python loop: the
 * function then returns None before it changes anything. No cryptography here: the key
 * ring's own `open_unless_erased` opens each value, and pydantic-core and binascii do the
 * JSON and base64, all called through their Python objects.
 *
 * tests/mapping/test_native_groups.py holds it to the Python loop (hypothesis).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Set once by configure() (sealing.py). */
static PyObject *to_json;          /* pydantic_core.to_json */
static PyObject *from_json;        /* pydantic_core.from_json */
static PyObject *a2b_base64;       /* binascii.a2b_base64 */
static PyObject *names_cache;      /* sealing._FIELD_NAMES: encoded paths -> field names */
static PyObject *field_names;      /* sealing._field_names(encoded, paths) */
static PyObject *redacted_marker;  /* shredstore.REDACTED */
static PyObject *no_fields;        /* frozenset() */
static PyObject *kw_aad, *kw_strict, *str_paths, *str_subject, *str_sealed, *str_redacted;

/* Whether every group is the usual one: a dict of a str subject, a str sealed value and a
 * list of paths each a list of one str; none redacted. */
static int usual(PyObject *groups)
{
    Py_ssize_t count = PyList_GET_SIZE(groups);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *group = PyList_GET_ITEM(groups, i);
        if (!PyDict_CheckExact(group) || PyDict_GetItemWithError(group, str_redacted) != NULL)
            return 0;
        PyObject *subject = PyDict_GetItemWithError(group, str_subject);
        PyObject *sealed = PyDict_GetItemWithError(group, str_sealed);
        PyObject *paths = PyDict_GetItemWithError(group, str_paths);
        if (PyErr_Occurred())
            return -1;
        if (subject == NULL || !PyUnicode_CheckExact(subject) || sealed == NULL
            || !PyUnicode_CheckExact(sealed) || paths == NULL || !PyList_CheckExact(paths))
            return 0;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(paths); j++) {
            PyObject *path = PyList_GET_ITEM(paths, j);
            if (!PyList_CheckExact(path) || PyList_GET_SIZE(path) != 1
                || !PyUnicode_CheckExact(PyList_GET_ITEM(path, 0)))
                return 0;
        }
    }
    return 1;
}

/* The group's field names (cached by their encoded paths). New reference. */
static PyObject *names_of(PyObject *encoded, PyObject *paths)
{
    PyObject *names = PyDict_GetItemWithError(names_cache, encoded);
    if (names != NULL && PyObject_IsTrue(names) == 1)
        return Py_NewRef(names);
    if (PyErr_Occurred())
        return NULL;
    PyObject *args[2] = {encoded, paths};
    return PyObject_Vectorcall(field_names, args, 2, NULL);
}

/* The field name of the group's i-th path (a list of one str, as `usual` found it); NULL with
 * ValueError if it is not that any more. Borrowed. */
static PyObject *field_key(PyObject *paths, Py_ssize_t i)
{
    PyObject *path = i < PyList_GET_SIZE(paths) ? PyList_GET_ITEM(paths, i) : NULL;
    if (path == NULL || !PyList_CheckExact(path) || PyList_GET_SIZE(path) != 1
        || !PyUnicode_CheckExact(PyList_GET_ITEM(path, 0))) {
        PyErr_SetString(PyExc_ValueError, "a group's paths changed while it was opened");
        return NULL;
    }
    return PyList_GET_ITEM(path, 0);
}

/* `value` (or each of `values`) put into `data` at the group's field names. */
static int put_fields(PyObject *data, PyObject *paths, PyObject *values, PyObject *value)
{
    Py_ssize_t count = PyList_GET_SIZE(paths);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = field_key(paths, i);
        if (key == NULL
            || PyDict_SetItem(data, key, values ? PyList_GET_ITEM(values, i) : value) < 0)
            return -1;
    }
    return 0;
}

/* One group opened into `data`: 1 if opened, 0 if its subject's key was erased (its fields
 * then REDACTED), -1 with an error set. */
static int open_group(PyObject *open, PyObject *subject, PyObject *sealed_text, PyObject *paths,
                      PyObject *data, PyObject *aad)
{
    PyObject *base64_args[2] = {sealed_text, Py_True};
    PyObject *sealed = PyObject_Vectorcall(a2b_base64, base64_args, 1, kw_strict);
    if (sealed == NULL)
        return -1;
    PyObject *open_args[3] = {subject, sealed, aad};
    PyObject *opened = PyObject_Vectorcall(open, open_args, 2, kw_aad);
    Py_DECREF(sealed);
    if (opened == NULL)
        return -1;
    if (opened == Py_None) {
        Py_DECREF(opened);
        return put_fields(data, paths, NULL, redacted_marker) < 0 ? -1 : 0;
    }
    PyObject *values = PyObject_CallOneArg(from_json, opened);
    Py_DECREF(opened);
    if (values == NULL)
        return -1;
    int done = -1;
    if (!PyList_CheckExact(values) || PyList_GET_SIZE(values) != PyList_GET_SIZE(paths))
        PyErr_SetString(PyExc_ValueError, "the opened values do not match the group's paths");
    else
        done = put_fields(data, paths, values, NULL) < 0 ? -1 : 1;
    Py_DECREF(values);
    return done;
}

/* One group: its field names added to *fields, its values (or REDACTED) put into `data`. */
static int one_group(PyObject *open, PyObject *group, PyObject *data, PyObject *context,
                     PyObject **fields)
{
    PyObject *subject = PyDict_GetItemWithError(group, str_subject);
    PyObject *sealed = PyDict_GetItemWithError(group, str_sealed);
    PyObject *paths = PyDict_GetItemWithError(group, str_paths);
    if (subject == NULL || sealed == NULL || paths == NULL || !PyList_CheckExact(paths)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "a group changed while it was opened");
        return -1;
    }
    Py_INCREF(subject);
    Py_INCREF(sealed);
    Py_INCREF(paths);
    int opened = -1;
    PyObject *aad = NULL, *names = NULL;
    PyObject *encoded = PyObject_CallOneArg(to_json, paths); /* the authenticated form */
    if (encoded == NULL)
        goto done;
    if (!PyBytes_CheckExact(encoded)) {
        PyErr_SetString(PyExc_TypeError, "to_json gave no bytes");
        goto done;
    }
    names = names_of(encoded, paths);
    if (names == NULL)
        goto done;
    int some = PyObject_IsTrue(*fields);
    if (some < 0)
        goto done;
    if (some) {
        PyObject *both = PyNumber_Or(*fields, names);
        if (both == NULL)
            goto done;
        Py_SETREF(*fields, both);
    }
    else
        Py_SETREF(*fields, Py_NewRef(names));
    aad = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(context) + PyBytes_GET_SIZE(encoded));
    if (aad == NULL)
        goto done;
    memcpy(PyBytes_AS_STRING(aad), PyBytes_AS_STRING(context), PyBytes_GET_SIZE(context));
    memcpy(PyBytes_AS_STRING(aad) + PyBytes_GET_SIZE(context), PyBytes_AS_STRING(encoded),
           PyBytes_GET_SIZE(encoded));
    opened = open_group(open, subject, sealed, paths, data, aad);
done:
    Py_XDECREF(aad);
    Py_XDECREF(names);
    Py_XDECREF(encoded);
    Py_DECREF(paths);
    Py_DECREF(sealed);
    Py_DECREF(subject);
    return opened;
}

/* open_groups(open_unless_erased, groups, data, context) -> (fields, redacted) or None. */
static PyObject *open_groups(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (to_json == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "shredstore.mapping.native is not configured");
        return NULL;
    }
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "open_groups() takes four arguments");
        return NULL;
    }
    PyObject *open = args[0], *groups = args[1], *data = args[2], *context = args[3];
    if (!PyList_CheckExact(groups) || !PyDict_CheckExact(data) || !PyBytes_CheckExact(context))
        Py_RETURN_NONE;
    int shape = usual(groups);
    if (shape <= 0) {
        if (shape < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *fields = Py_NewRef(no_fields);
    int redacted = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(groups); i++) {
        PyObject *group = Py_NewRef(PyList_GET_ITEM(groups, i));
        int opened = PyDict_CheckExact(group) ? one_group(open, group, data, context, &fields)
                                              : -1;
        Py_DECREF(group);
        if (opened < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a group changed while it was opened");
            Py_DECREF(fields);
            return NULL;
        }
        redacted |= opened == 0;
    }
    return Py_BuildValue("(NO)", fields, redacted ? Py_True : Py_False);
}

static PyObject *configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"to_json", "from_json", "a2b_base64", "names_cache", "field_names",
                            "redacted", NULL};
    PyObject *values[6];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOO!OO", names, &values[0], &values[1],
                                     &values[2], &PyDict_Type, &values[3], &values[4],
                                     &values[5]))
        return NULL;
    PyObject **slots[] = {&to_json, &from_json, &a2b_base64, &names_cache, &field_names,
                          &redacted_marker};
    for (int i = 0; i < 6; i++)
        Py_XSETREF(*slots[i], Py_NewRef(values[i]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Set the functions and values open_groups uses (once, at import)."},
    {"open_groups", (PyCFunction)(void (*)(void))open_groups, METH_FASTCALL,
     "sealing.open_groups's loop for the usual groups; None where it leaves them to Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "shredstore.mapping.native",
    "The usual case of opening personal groups in C (see shredstore/mapping/native.c).", -1,
    methods,
};

PyMODINIT_FUNC PyInit_native(void)
{
    no_fields = PyFrozenSet_New(NULL);
    kw_aad = Py_BuildValue("(s)", "aad");
    kw_strict = Py_BuildValue("(s)", "strict_mode");
    str_paths = PyUnicode_InternFromString("paths");
    str_subject = PyUnicode_InternFromString("subject");
    str_sealed = PyUnicode_InternFromString("sealed");
    str_redacted = PyUnicode_InternFromString("redacted");
    if (!no_fields || !kw_aad || !kw_strict || !str_paths || !str_subject || !str_sealed
        || !str_redacted)
        return NULL;
    return PyModule_Create(&module_def);
}
