/* shredstore.mapping.native: a read's usual rows decoded in C.
 *
 * page_subjects, open_groups and recorded do what mapper.py's `_python_page_subjects`,
 * sealing.py's `_open_each` and `EventMapper.to_recorded` do (that Python code stays the
 * reference and the fallback) for the rows and groups every append writes: each group a
 * sealed value for one subject, with paths of one field name each. Any other column (a
 * redacted group, a nested path, a value of another type) or row (an unknown class, an older
 * schema version, one that fails) is left to the Python code: the function then returns
 * None, having changed nothing. No cryptography here: the key ring's own
 * `open_unless_erased` opens each value, and pydantic-core and binascii do the JSON and
 * base64, all called through their Python objects.
 *
 * tests/mapping/test_native_groups.py holds each function to its Python original
 * (hypothesis).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "native_uuid.h"

/* Set once by configure() (sealing.py and mapper.py). */
static PyObject *to_json;          /* pydantic_core.to_json */
static PyObject *from_json;        /* pydantic_core.from_json */
static PyObject *a2b_base64;       /* binascii.a2b_base64 */
static PyObject *names_cache;      /* sealing._FIELD_NAMES: encoded paths -> field names */
static PyObject *field_names;      /* sealing._field_names(encoded, paths) */
static PyObject *redacted_marker;  /* shredstore.REDACTED */
static PyObject *no_fields;        /* frozenset() */
static PyObject *no_arguments;     /* () */
static PyObject *record_type;      /* shredstore.RecordedEvent */
static PyObject *record_fields;    /* its eleven slots' names, in its order */
static PyObject *context_prefix;   /* sealing._EVENT_CONTEXT */
static PyObject *empty_metadata;   /* encoding.EMPTY_METADATA */
static PyObject *page_subjects_fallback; /* mapper._python_page_subjects */
static PyObject *kw_aad, *kw_strict, *str_paths, *str_subject, *str_sealed, *str_redacted;
static PyObject *str_int, *str_event_id;

/* NULL with RuntimeError: a function called before configure() set what it uses. */
static PyObject *not_configured(void)
{
    PyErr_SetString(PyExc_RuntimeError, "shredstore.mapping.native is not configured");
    return NULL;
}

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
    if (to_json == NULL)
        return not_configured();
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

/* An event's context for its sealed values (sealing.event_context): the prefix and the
 * event id's 16 bytes. */
static PyObject *event_context(PyObject *event_id)
{
    unsigned char id[16];
    if (uuid_bytes(event_id, str_int, id) < 0)
        return NULL;
    Py_ssize_t prefix = PyBytes_GET_SIZE(context_prefix);
    PyObject *context = PyBytes_FromStringAndSize(NULL, prefix + 16);
    if (context != NULL) {
        memcpy(PyBytes_AS_STRING(context), PyBytes_AS_STRING(context_prefix), prefix);
        memcpy(PyBytes_AS_STRING(context) + prefix, id, 16);
    }
    return context;
}

/* The field names at which the groups put REDACTED (split.redacted_fields, for usual groups). */
static PyObject *redacted_names(PyObject *groups, PyObject *data)
{
    PyObject *found = PySet_New(NULL);
    if (found == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(groups); i++) {
        PyObject *paths = PyDict_GetItemWithError(PyList_GET_ITEM(groups, i), str_paths);
        if (paths == NULL || !PyList_CheckExact(paths))
            goto failed;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(paths); j++) {
            PyObject *key = field_key(paths, j);
            PyObject *value = key == NULL ? NULL : PyDict_GetItemWithError(data, key);
            if (value == NULL)
                goto failed;
            if (value == redacted_marker && PySet_Add(found, key) < 0)
                goto failed;
        }
    }
    PyObject *names = PyFrozenSet_New(found);
    Py_DECREF(found);
    return names;
failed:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "a group changed while it was read");
    Py_DECREF(found);
    return NULL;
}

/* The RecordedEvent of a decoded row: its slots set as RecordedEvent's own maker sets them. */
static PyObject *record(PyObject *row, PyObject *metadata, PyObject *event, PyObject *redacted,
                        PyObject *personal)
{
    PyObject *made = PyBaseObject_Type.tp_new((PyTypeObject *)record_type, no_arguments, NULL);
    if (made == NULL)
        return NULL;
    PyObject *values[11] = {PyTuple_GET_ITEM(row, 0), PyTuple_GET_ITEM(row, 1),
                            PyTuple_GET_ITEM(row, 2), PyTuple_GET_ITEM(row, 3),
                            PyTuple_GET_ITEM(row, 4), PyTuple_GET_ITEM(row, 5),
                            PyTuple_GET_ITEM(row, 6), metadata, event, redacted, personal};
    for (int i = 0; i < 11; i++)
        if (PyObject_GenericSetAttr(made, PyTuple_GET_ITEM(record_fields, i), values[i]) < 0) {
            Py_DECREF(made);
            return NULL;
        }
    return made;
}

/* recorded(row, groups, open_unless_erased, validate) -> RecordedEvent or None: the usual case
 * of EventMapper.to_recorded (mapper.py), for a row of a class read before at its schema
 * version: the payload and metadata parsed, the personal groups opened (`groups`, the row's
 * parsed column, or None if it has none), the event validated and recorded. None, with
 * nothing changed, wherever any step fails or the row is not that case: the Python code
 * then decodes the row itself and raises its own error. */
static PyObject *recorded(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (record_type == NULL || record_fields == NULL || context_prefix == NULL
        || empty_metadata == NULL || to_json == NULL)
        return not_configured();
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "recorded() takes four arguments");
        return NULL;
    }
    PyObject *row = args[0], *groups = args[1], *open = args[2], *validate = args[3];
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 10)
        Py_RETURN_NONE;
    PyObject *payload = PyTuple_GET_ITEM(row, 8), *stored_metadata = PyTuple_GET_ITEM(row, 7);
    int personal = PyTuple_GET_ITEM(row, 9) != Py_None;
    if (!PyUnicode_CheckExact(payload) || !PyUnicode_CheckExact(stored_metadata)
        || (personal && (groups == Py_None || open == Py_None)))
        Py_RETURN_NONE;
    PyObject *data = NULL, *metadata = NULL, *context = NULL, *opened = NULL, *event = NULL;
    PyObject *redacted = NULL, *made = NULL;
    data = PyObject_CallOneArg(from_json, payload);
    if (data == NULL || !PyDict_CheckExact(data))
        goto done;
    int same = PyUnicode_Compare(stored_metadata, empty_metadata);
    metadata = same == 0 ? PyDict_New() : PyObject_CallOneArg(from_json, stored_metadata);
    if (metadata == NULL)
        goto done;
    if (personal) {
        context = event_context(PyTuple_GET_ITEM(row, 3));
        if (context == NULL)
            goto done;
        PyObject *call[4] = {open, groups, data, context};
        opened = open_groups(module, call, 4);
        if (opened == NULL || opened == Py_None)
            goto done;
    }
    if (PyDict_SetItem(data, str_event_id, PyTuple_GET_ITEM(row, 3)) < 0)
        goto done;
    event = PyObject_CallOneArg(validate, data);
    if (event == NULL)
        goto done;
    PyObject *fields = personal ? PyTuple_GET_ITEM(opened, 0) : no_fields;
    if (personal && PyTuple_GET_ITEM(opened, 1) == Py_True)
        redacted = redacted_names(groups, data);
    else
        redacted = Py_NewRef(no_fields);
    if (redacted == NULL)
        goto done;
    made = record(row, metadata, event, redacted, fields);
done:
    Py_XDECREF(redacted);
    Py_XDECREF(event);
    Py_XDECREF(opened);
    Py_XDECREF(context);
    Py_XDECREF(metadata);
    Py_XDECREF(data);
    if (made == NULL && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL; /* KeyboardInterrupt and the like go on */
        PyErr_Clear();   /* the Python code decodes the row again and says what is wrong */
    }
    if (made == NULL)
        Py_RETURN_NONE;
    return made;
}

/* Whether a parsed personal column is well formed (column.decode_column's checks): a list of
 * dicts, each with a non-empty str subject, a list of non-empty list paths, and a str sealed
 * value or "redacted": true. */
static int well_formed(PyObject *groups)
{
    if (!PyList_CheckExact(groups))
        return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(groups); i++) {
        PyObject *group = PyList_GET_ITEM(groups, i);
        if (!PyDict_CheckExact(group))
            return 0;
        PyObject *subject = PyDict_GetItemWithError(group, str_subject);
        PyObject *paths = PyDict_GetItemWithError(group, str_paths);
        if (PyErr_Occurred())
            return -1;
        if (subject == NULL || !PyUnicode_CheckExact(subject)
            || PyUnicode_GET_LENGTH(subject) == 0 || paths == NULL || !PyList_CheckExact(paths))
            return 0;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(paths); j++) {
            PyObject *path = PyList_GET_ITEM(paths, j);
            if (!PyList_CheckExact(path) || PyList_GET_SIZE(path) == 0)
                return 0;
        }
        PyObject *sealed = PyDict_GetItemWithError(group, str_sealed);
        PyObject *redacted = sealed == NULL || !PyUnicode_CheckExact(sealed)
            ? PyDict_GetItemWithError(group, str_redacted) : NULL;
        if (PyErr_Occurred())
            return -1;
        if ((sealed == NULL || !PyUnicode_CheckExact(sealed)) && redacted != Py_True)
            return 0;
    }
    return 1;
}

/* page_subjects(rows) -> (parsed, subjects): mapper.page_subjects. Each row's parsed personal
 * column (None: it has none, or it is malformed), and the subjects they name. */
static PyObject *page_subjects(PyObject *module, PyObject *rows)
{
    if (from_json == NULL || page_subjects_fallback == NULL)
        return not_configured();
    if (!PyList_CheckExact(rows))
        return PyObject_CallOneArg(page_subjects_fallback, rows);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 10
            || !(PyTuple_GET_ITEM(row, 9) == Py_None
                 || PyUnicode_CheckExact(PyTuple_GET_ITEM(row, 9))))
            return PyObject_CallOneArg(page_subjects_fallback, rows);
    }
    Py_ssize_t count = PyList_GET_SIZE(rows);
    PyObject *parsed = PyList_New(count), *subjects = PySet_New(NULL);
    if (parsed == NULL || subjects == NULL)
        goto failed;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = PyTuple_GET_ITEM(PyList_GET_ITEM(rows, i), 9);
        PyObject *groups = Py_None;
        if (text != Py_None) {
            groups = PyObject_CallOneArg(from_json, text);
            if (groups == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_ValueError))
                    goto failed;
                PyErr_Clear(); /* not JSON: malformed, reported by to_recorded */
                groups = Py_None;
            }
            else {
                int formed = well_formed(groups);
                if (formed < 0) {
                    Py_DECREF(groups);
                    goto failed;
                }
                if (!formed)
                    Py_SETREF(groups, Py_None);
            }
        }
        if (groups == Py_None) {
            PyList_SET_ITEM(parsed, i, Py_NewRef(Py_None));
            continue;
        }
        PyList_SET_ITEM(parsed, i, groups);
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(groups); j++)
            if (PySet_Add(subjects, PyDict_GetItem(PyList_GET_ITEM(groups, j), str_subject)) < 0)
                goto failed;
    }
    return Py_BuildValue("(NN)", parsed, subjects);
failed:
    Py_XDECREF(parsed);
    Py_XDECREF(subjects);
    return NULL;
}

static PyObject *configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"to_json", "from_json", "a2b_base64", "names_cache", "field_names",
                            "redacted", "record", "record_fields", "context_prefix",
                            "empty_metadata", "page_subjects", NULL};
    PyObject *values[11] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOO!OOO!O!O!UO", names, &values[0],
                                     &values[1], &values[2], &PyDict_Type, &values[3],
                                     &values[4], &values[5], &PyType_Type, &values[6],
                                     &PyTuple_Type, &values[7], &PyBytes_Type, &values[8],
                                     &values[9], &values[10]))
        return NULL;
    if (values[7] != NULL && PyTuple_GET_SIZE(values[7]) != 11) {
        PyErr_SetString(PyExc_TypeError, "a RecordedEvent has eleven fields");
        return NULL;
    }
    PyObject **slots[] = {&to_json, &from_json, &a2b_base64, &names_cache, &field_names,
                          &redacted_marker, &record_type, &record_fields, &context_prefix,
                          &empty_metadata, &page_subjects_fallback};
    for (int i = 0; i < 11; i++)
        if (values[i] != NULL)
            Py_XSETREF(*slots[i], Py_NewRef(values[i]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Set the functions and values open_groups uses (once, at import)."},
    {"open_groups", (PyCFunction)(void (*)(void))open_groups, METH_FASTCALL,
     "sealing.open_groups's loop for the usual groups; None where it leaves them to Python."},
    {"page_subjects", page_subjects, METH_O,
     "mapper.page_subjects: a page's parsed personal columns and the subjects they name."},
    {"recorded", (PyCFunction)(void (*)(void))recorded, METH_FASTCALL,
     "EventMapper.to_recorded's usual case; None where it leaves the row to Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "shredstore.mapping.native",
    "A read's usual rows decoded in C (see shredstore/mapping/native.c).", -1,
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
    str_int = PyUnicode_InternFromString("int");
    str_event_id = PyUnicode_InternFromString("event_id");
    no_arguments = PyTuple_New(0);
    if (!no_fields || !kw_aad || !kw_strict || !str_paths || !str_subject || !str_sealed
        || !str_redacted || !str_int || !str_event_id || !no_arguments)
        return NULL;
    return PyModule_Create(&module_def);
}
