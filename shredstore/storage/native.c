/* shredstore.storage.native: the per-row steps of a read and an append in C.
 *
 * Each function does exactly what its Python original does (shredstore/storage/chain.py,
 * formats.py and authentication.py, which stay the reference and the fallback) for the values
 * appends store: exact str, int, UUID and datetime objects. Any other value is handed to the
 * Python original, so that what is refused, and how, is decided in one place. No cryptography
 * here: the keyed BLAKE2b state and the constant-time comparison are hashlib's and hmac's,
 * called through their Python objects.
 *
 * tests/storage/test_native_rows.py checks each function against its Python original
 * (hypothesis, on values of every type and range, valid and not).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <string.h>

#include "native_uuid.h"

/* Set once by configure(): the Python originals and the types the fast paths build. */
static PyObject *frame_fallback;      /* chain._python_frame(*fields) */
static PyObject *sqlite_row_fallback; /* formats._python_sqlite_row(raw) */
static PyObject *postgres_row_fallback; /* formats._python_postgres_row(raw) */
static PyObject *stored_row_type;     /* chain.StoredRow */
static PyObject *uuid_type;           /* uuid.UUID */
static PyObject *safe_unknown;        /* uuid.SafeUUID.unknown */
static PyObject *epoch;               /* datetime(1970, 1, 1, tzinfo=UTC) */
static PyObject *compare_digest;      /* hmac.compare_digest */
static PyObject *no_arguments;       /* () */
static PyObject *str_int, *str_is_safe, *str_copy, *str_update, *str_digest;

#define FIELDS 10   /* the framed fields, in row_content's order */
#define ROW_SIZE 14 /* StoredRow's fields */
#define MAC_SIZE 33 /* format 2: the byte 2 and BLAKE2b-256 */

static void put_u64(char *at, unsigned long long value)
{
    for (int i = 7; i >= 0; i--) {
        at[i] = (char)(value & 0xff);
        value >>= 8;
    }
}

/* Whether framing `fields` is this module's to do (else the Python original does it). */
static int fast_fields(PyObject *const *fields)
{
    return PyUnicode_CheckExact(fields[0]) && PyLong_CheckExact(fields[1])
        && Py_IS_TYPE(fields[2], (PyTypeObject *)uuid_type) && PyUnicode_CheckExact(fields[3])
        && PyLong_CheckExact(fields[4]) && PyDateTime_CheckExact(fields[5])
        && PyUnicode_CheckExact(fields[6]) && PyUnicode_CheckExact(fields[7])
        && (fields[8] == Py_None || PyUnicode_CheckExact(fields[8]))
        && (fields[9] == Py_None || PyUnicode_CheckExact(fields[9]));
}

/* Microseconds since the epoch of an aware datetime: (moment - epoch) // 1 microsecond. */
static int micros_since_epoch(PyObject *moment, long long *out)
{
    PyObject *delta = PyNumber_Subtract(moment, epoch); /* TypeError if naive */
    if (delta == NULL)
        return -1;
    if (!PyDelta_Check(delta)) {
        Py_DECREF(delta);
        PyErr_SetString(PyExc_TypeError, "not a time");
        return -1;
    }
    *out = (long long)PyDateTime_DELTA_GET_DAYS(delta) * 86400000000LL
        + (long long)PyDateTime_DELTA_GET_SECONDS(delta) * 1000000LL
        + PyDateTime_DELTA_GET_MICROSECONDS(delta);
    Py_DECREF(delta);
    return 0;
}

/* The framed content of `fields` (row_content), after `prefix` bytes left for the caller. */
static PyObject *frame_into(PyObject *const *fields, Py_ssize_t prefix)
{
    if (!fast_fields(fields)) {
        PyObject *framed = PyObject_Vectorcall(frame_fallback, fields, FIELDS, NULL);
        if (framed == NULL || prefix == 0)
            return framed;
        if (!PyBytes_CheckExact(framed)) {
            Py_DECREF(framed);
            PyErr_SetString(PyExc_TypeError, "framing gave no bytes");
            return NULL;
        }
        PyObject *out = PyBytes_FromStringAndSize(NULL, prefix + PyBytes_GET_SIZE(framed));
        if (out != NULL)
            memcpy(PyBytes_AS_STRING(out) + prefix, PyBytes_AS_STRING(framed),
                   PyBytes_GET_SIZE(framed));
        Py_DECREF(framed);
        return out;
    }
    static const int texts[] = {0, 3, 6, 7, 8, 9};
    const char *text[FIELDS] = {0};
    Py_ssize_t size[FIELDS] = {0};
    for (int i = 0; i < 6; i++) {
        int at = texts[i];
        if (fields[at] == Py_None)
            continue;
        text[at] = PyUnicode_AsUTF8AndSize(fields[at], &size[at]); /* UnicodeEncodeError */
        if (text[at] == NULL)
            return NULL;
    }
    unsigned long long version = PyLong_AsUnsignedLongLong(fields[1]); /* OverflowError */
    if (version == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    unsigned long long schema_version = PyLong_AsUnsignedLongLong(fields[4]);
    if (schema_version == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    unsigned char id[16];
    if (uuid_bytes(fields[2], str_int, id) < 0)
        return NULL;
    long long micros;
    if (micros_since_epoch(fields[5], &micros) < 0)
        return NULL;

    Py_ssize_t total = prefix + 8 + size[0] + 48 + size[3] + 40 + size[6] + 8 + size[7]
        + 8 + 1 + size[8] + 8 + 1 + size[9];
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    char *at = PyBytes_AS_STRING(out) + prefix;
#define PUT(value) (put_u64(at, (unsigned long long)(value)), at += 8)
#define COPY(i) (memcpy(at, text[i], (size_t)size[i]), at += size[i])
    PUT(size[0]);
    COPY(0);
    PUT(8);
    PUT(version);
    PUT(16);
    memcpy(at, id, 16);
    at += 16;
    PUT(size[3]);
    COPY(3);
    PUT(8);
    PUT(schema_version);
    PUT(8);
    PUT(micros);
    PUT(size[6]);
    COPY(6);
    PUT(size[7]);
    COPY(7);
    for (int i = 8; i < FIELDS; i++) { /* NULL: a 0 byte; else a 1 byte and the text */
        PUT(text[i] == NULL ? 1 : 1 + size[i]);
        *at++ = text[i] == NULL ? 0 : 1;
        if (text[i] != NULL)
            COPY(i);
    }
#undef PUT
#undef COPY
    if (at != PyBytes_AS_STRING(out) + total) { /* a miscount in the sizes above */
        Py_DECREF(out);
        PyErr_SetString(PyExc_SystemError, "shredstore.storage.native framed a row wrongly");
        return NULL;
    }
    return out;
}

/* Whether configure() set what every function uses, and `also` (a function's own original;
 * pass frame_fallback where there is none): else RuntimeError. */
static int configured(PyObject *also)
{
    if (frame_fallback == NULL || stored_row_type == NULL || uuid_type == NULL
        || safe_unknown == NULL || epoch == NULL || compare_digest == NULL || also == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "shredstore.storage.native is not configured");
        return 0;
    }
    return 1;
}

/* frame(stream_id, version, event_id, event_type, schema_version, recorded_at, metadata,
 *       payload, personal, subjects) -> bytes: chain._python_frame. */
static PyObject *frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured(frame_fallback))
        return NULL;
    if (nargs != FIELDS) {
        PyErr_SetString(PyExc_TypeError, "frame() takes the ten framed fields");
        return NULL;
    }
    return frame_into(args, 0);
}

/* A StoredRow's framed fields, in row_content's order. */
static int row_fields(PyObject *row, PyObject **fields)
{
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ROW_SIZE) {
        PyErr_SetString(PyExc_TypeError, "not a stored row");
        return -1;
    }
    for (int i = 0; i < 9; i++)
        fields[i] = PyTuple_GET_ITEM(row, i + 1);
    fields[9] = PyTuple_GET_ITEM(row, 12);
    return 0;
}

/* frame_row(row) -> bytes: chain.content_of without its translation of errors. */
static PyObject *frame_row(PyObject *module, PyObject *row)
{
    PyObject *fields[FIELDS];
    if (!configured(frame_fallback) || row_fields(row, fields) < 0)
        return NULL;
    return frame_into(fields, 0);
}

/* authentic(row, keyed) -> True, False or None: authentication._python_authentic. A StoredRow
 * whose authenticator is of format 2 checked against the keyed BLAKE2b state `keyed` (copied,
 * fed the position and content); None where it has none of format 2 (the Python check then
 * judges it). Raises for a position that is not an integer of 64 bits, and what framing
 * raises. */
static PyObject *authentic(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured(frame_fallback))
        return NULL;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "authentic() takes a row and a keyed state");
        return NULL;
    }
    PyObject *row = args[0], *keyed = args[1], *fields[FIELDS];
    if (row_fields(row, fields) < 0)
        return NULL;
    PyObject *mac = PyTuple_GET_ITEM(row, 13), *position = PyTuple_GET_ITEM(row, 0);
    if (!PyBytes_CheckExact(mac) || PyBytes_GET_SIZE(mac) != MAC_SIZE
        || PyBytes_AS_STRING(mac)[0] != 2)
        Py_RETURN_NONE;
    /* As struct's ">Q": any integer (through __index__) of 64 bits, else an error. */
    PyObject *index = PyNumber_Index(position);
    if (index == NULL)
        return NULL;
    unsigned long long at = PyLong_AsUnsignedLongLong(index);
    Py_DECREF(index);
    if (at == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    PyObject *content = frame_into(fields, 8);
    if (content == NULL)
        return NULL;
    put_u64(PyBytes_AS_STRING(content), at);
    PyObject *state = PyObject_CallMethodNoArgs(keyed, str_copy);
    if (state == NULL) {
        Py_DECREF(content);
        return NULL;
    }
    PyObject *done = PyObject_CallMethodOneArg(state, str_update, content);
    Py_DECREF(content);
    PyObject *digest = done == NULL ? NULL : PyObject_CallMethodNoArgs(state, str_digest);
    Py_XDECREF(done);
    Py_DECREF(state);
    if (digest == NULL)
        return NULL;
    if (!PyBytes_CheckExact(digest) || PyBytes_GET_SIZE(digest) != MAC_SIZE - 1) {
        Py_DECREF(digest);
        PyErr_SetString(PyExc_ValueError, "the keyed state gives no 32-byte digest");
        return NULL;
    }
    PyObject *expected = PyBytes_FromStringAndSize(NULL, MAC_SIZE);
    if (expected != NULL) {
        PyBytes_AS_STRING(expected)[0] = 2;
        memcpy(PyBytes_AS_STRING(expected) + 1, PyBytes_AS_STRING(digest), MAC_SIZE - 1);
    }
    Py_DECREF(digest);
    if (expected == NULL)
        return NULL;
    PyObject *pair[2] = {expected, mac};
    PyObject *same = PyObject_Vectorcall(compare_digest, pair, 2, NULL);
    Py_DECREF(expected);
    return same;
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A UUID from exactly 32 hex digits (formats.uuid_of_hex); NULL without an error set if the
 * text is not that. */
static PyObject *uuid_of_hex(PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text) || PyUnicode_GET_LENGTH(text) != 32)
        return NULL;
    const unsigned char *hex = PyUnicode_1BYTE_DATA(text);
    unsigned char raw[16];
    for (int i = 0; i < 16; i++) {
        int high = hex_value(hex[2 * i]), low = hex_value(hex[2 * i + 1]);
        if (high < 0 || low < 0)
            return NULL;
        raw[i] = (unsigned char)(high << 4 | low);
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *value = PyLong_FromUnsignedNativeBytes(
        raw, 16, Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER);
#else
    PyObject *value = _PyLong_FromByteArray(raw, 16, 0, 0); /* big-endian, unsigned */
#endif
    if (value == NULL)
        return NULL;
    PyObject *uuid = PyBaseObject_Type.tp_new((PyTypeObject *)uuid_type, no_arguments, NULL);
    if (uuid == NULL || PyObject_GenericSetAttr(uuid, str_int, value) < 0
        || PyObject_GenericSetAttr(uuid, str_is_safe, safe_unknown) < 0) {
        Py_DECREF(value);
        Py_XDECREF(uuid);
        return NULL;
    }
    Py_DECREF(value);
    return uuid;
}

static int digits(const unsigned char *at, int count, int *out)
{
    int value = 0;
    for (int i = 0; i < count; i++) {
        if (at[i] < '0' || at[i] > '9')
            return -1;
        value = value * 10 + (at[i] - '0');
    }
    *out = value;
    return 0;
}

/* SQLite's stored time, "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), as an aware datetime; NULL
 * without an error set if the text is not exactly that. */
static PyObject *sqlite_time(PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text) || PyUnicode_GET_LENGTH(text) != 26)
        return NULL;
    const unsigned char *t = PyUnicode_1BYTE_DATA(text);
    int year, month, day, hour, minute, second, micro;
    if (t[4] != '-' || t[7] != '-' || t[10] != ' ' || t[13] != ':' || t[16] != ':'
        || t[19] != '.' || digits(t, 4, &year) || digits(t + 5, 2, &month)
        || digits(t + 8, 2, &day) || digits(t + 11, 2, &hour) || digits(t + 14, 2, &minute)
        || digits(t + 17, 2, &second) || digits(t + 20, 6, &micro))
        return NULL;
    PyObject *moment = PyDateTimeAPI->DateTime_FromDateAndTime(
        year, month, day, hour, minute, second, micro, PyDateTime_TimeZone_UTC,
        PyDateTimeAPI->DateTimeType);
    if (moment == NULL)
        PyErr_Clear(); /* out of range: the Python original raises, as it must */
    return moment;
}

/* A StoredRow of a raw row's values, with its event id and time as given (references taken
 * over, also on failure), and empty chain hashes where it was not read for verify. */
static PyObject *stored_row(PyObject *raw, PyObject *event_id, PyObject *moment)
{
    /* The read's columns in StoredRow's order: its chain hashes, read for verify, come last. */
    static const int from[ROW_SIZE] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 10, 11};
    PyTypeObject *type = (PyTypeObject *)stored_row_type;
    PyObject *row = type->tp_alloc(type, ROW_SIZE);
    if (row == NULL) {
        Py_DECREF(event_id);
        Py_DECREF(moment);
        return NULL;
    }
    PyTuple_SET_ITEM(row, 3, event_id);
    PyTuple_SET_ITEM(row, 6, moment);
    for (int i = 0; i < ROW_SIZE; i++) {
        if (i == 3 || i == 6)
            continue;
        PyObject *value = from[i] < PyTuple_GET_SIZE(raw)
            ? Py_NewRef(PyTuple_GET_ITEM(raw, from[i])) : PyBytes_FromStringAndSize(NULL, 0);
        if (value == NULL) {
            Py_DECREF(row);
            return NULL;
        }
        PyTuple_SET_ITEM(row, i, value);
    }
    return row;
}

/* sqlite_row(raw) -> StoredRow: formats._python_sqlite_row, which takes any row whose event
 * id or time is not in the stored form (and raises for one that does not convert). */
static PyObject *sqlite_row(PyObject *module, PyObject *raw)
{
    if (!configured(sqlite_row_fallback))
        return NULL;
    Py_ssize_t size = PyTuple_Check(raw) ? PyTuple_GET_SIZE(raw) : 0;
    if (size != 12 && size != 14)
        return PyObject_CallOneArg(sqlite_row_fallback, raw);
    PyObject *id_text = PyTuple_GET_ITEM(raw, 3), *time_text = PyTuple_GET_ITEM(raw, 6);
    if (!PyUnicode_CheckExact(id_text) || !PyUnicode_CheckExact(time_text))
        return PyObject_CallOneArg(sqlite_row_fallback, raw);
    PyObject *event_id = uuid_of_hex(id_text);
    if (event_id == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return PyObject_CallOneArg(sqlite_row_fallback, raw);
    }
    PyObject *moment = sqlite_time(time_text);
    if (moment == NULL) {
        Py_DECREF(event_id);
        return PyObject_CallOneArg(sqlite_row_fallback, raw);
    }
    return stored_row(raw, event_id, moment);
}

/* postgres_row(raw) -> StoredRow: formats._python_postgres_row for a row read for its event
 * (12 columns, the time as an int of microseconds since the epoch, the authenticator as bytes
 * or NULL); any other row goes to the Python original (which also raises for a time no
 * datetime holds). */
static PyObject *postgres_row(PyObject *module, PyObject *raw)
{
    if (!configured(postgres_row_fallback))
        return NULL;
    if (!PyTuple_CheckExact(raw) || PyTuple_GET_SIZE(raw) != 12
        || !PyLong_CheckExact(PyTuple_GET_ITEM(raw, 6))
        || !(PyTuple_GET_ITEM(raw, 11) == Py_None
             || PyBytes_CheckExact(PyTuple_GET_ITEM(raw, 11))))
        return PyObject_CallOneArg(postgres_row_fallback, raw);
    int overflow = 0;
    long long micros = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(raw, 6), &overflow);
    if (overflow || (micros == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return PyObject_CallOneArg(postgres_row_fallback, raw);
    }
    /* floor division into days, seconds and microseconds, as timedelta normalises them */
    long long day = 86400000000LL, days = micros / day, rest = micros % day;
    if (rest < 0) {
        rest += day;
        days -= 1;
    }
    PyObject *delta = PyDelta_FromDSU((int)days, (int)(rest / 1000000), (int)(rest % 1000000));
    PyObject *moment = delta == NULL ? NULL : PyNumber_Add(epoch, delta);
    Py_XDECREF(delta);
    if (moment == NULL) { /* beyond datetime's range: the original raises, as it must */
        PyErr_Clear();
        return PyObject_CallOneArg(postgres_row_fallback, raw);
    }
    return stored_row(raw, Py_NewRef(PyTuple_GET_ITEM(raw, 3)), moment);
}

/* configure(**values): the Python originals and types, each set once at import by the module
 * that owns it (chain.py: everything but the rows' originals; formats.py: those). */
static PyObject *configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"frame", "sqlite_row", "stored_row", "uuid", "safe_unknown",
                            "epoch", "compare_digest", "postgres_row", NULL};
    PyObject *values[8] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOOOOOO", names, &values[0], &values[1],
                                     &values[2], &values[3], &values[4], &values[5],
                                     &values[6], &values[7]))
        return NULL;
    if ((values[2] != NULL && (!PyType_Check(values[2])
                               || !PyType_IsSubtype((PyTypeObject *)values[2], &PyTuple_Type)))
        || (values[3] != NULL && !PyType_Check(values[3]))
        || (values[5] != NULL && !PyDateTime_Check(values[5]))) {
        PyErr_SetString(PyExc_TypeError, "configure() got a value of the wrong type");
        return NULL;
    }
    PyObject **slots[] = {&frame_fallback, &sqlite_row_fallback, &stored_row_type, &uuid_type,
                          &safe_unknown, &epoch, &compare_digest, &postgres_row_fallback};
    for (int i = 0; i < 8; i++) {
        if (values[i] == NULL)
            continue;
        Py_INCREF(values[i]);
        Py_XSETREF(*slots[i], values[i]);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Set the Python originals and the types the fast paths use (once, at import)."},
    {"frame", (PyCFunction)(void (*)(void))frame, METH_FASTCALL,
     "chain._python_frame: a row's ten fields framed as the chain and authenticator hash them."},
    {"frame_row", frame_row, METH_O, "A stored row's framed content."},
    {"authentic", (PyCFunction)(void (*)(void))authentic, METH_FASTCALL,
     "Whether a stored row's format-2 authenticator matches (None: not that usual case)."},
    {"sqlite_row", sqlite_row, METH_O, "formats._python_sqlite_row: an SQLite row converted."},
    {"postgres_row", postgres_row, METH_O,
     "formats._python_postgres_row: a PostgreSQL row converted."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "shredstore.storage.native",
    "The per-row steps of reads and appends in C (see shredstore/storage/native.c).", -1,
    methods,
};

PyMODINIT_FUNC PyInit_native(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    str_int = PyUnicode_InternFromString("int");
    str_is_safe = PyUnicode_InternFromString("is_safe");
    str_copy = PyUnicode_InternFromString("copy");
    str_update = PyUnicode_InternFromString("update");
    str_digest = PyUnicode_InternFromString("digest");
    no_arguments = PyTuple_New(0);
    if (!no_arguments || !str_int || !str_is_safe || !str_copy || !str_update || !str_digest)
        return NULL;
    return PyModule_Create(&module_def);
}
