/* acid._writepath: the hot part of Collection.put, in C.
 *
 * Optional, like acid._keylib: acid/collection.py uses it when the C key
 * encoder is in use and falls back to its own Python code otherwise. Both
 * do the same engine calls in the same order; the Python code is the
 * reference (it also covers every case this one leaves to it).
 *
 * put(plan, txn, rec, key, cell, slot) stores ``rec`` under ``key`` (or, if
 * it is None, the key the key function makes) and keeps the collection's
 * index entries in step, in the write transaction ``txn``:
 *
 * 1. Everything that can fail without writing: the key function, the
 *    encoder, every index function, the key's packing. An error here
 *    propagates and nothing was written; one in making the key a tuple or
 *    packing it appends ``(key,)`` to the list ``slot`` first, so that the
 *    caller can run the put again with that key, on its own, when its
 *    transaction ended under it (as the Python code does).
 * 2. ``old = txn.replace(full_key, value)``. An error here propagates too,
 *    after appending ``(key,)``: the engine wrote nothing.
 * 3. Index entries: new ones for a new record (then one more record is
 *    counted), or only those that changed against the old record. An error
 *    here appends ``(full, old, rkey, old_entries, new_entries, inserted)``
 *    to the list ``slot`` before it propagates, so that the caller can
 *    put back what was written (acid/collection.py ``_undo``).
 *
 * ``slot`` also carries ``[indexes]`` (a list) when the collection's indexes
 * changed while a put ran (its key function or encoder declared or dropped
 * one): the put takes them, as the Python code reads the indexes only then.
 *
 * ``plan`` is the tuple Collection._make_plan builds (see P_* below);
 * ``cell`` is the transaction's pending record count for the collection (a
 * list whose first item is an int), or None to call ``plan[P_COUNT_NOW]``.
 * Returns the record's key (a tuple). Misuse (a wrong plan) raises
 * TypeError: nothing here trusts its arguments' shapes.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

enum {
    P_KEY_FUNC,  /* rec -> key, or None (then a key must be given) */
    P_ENCODE,    /* rec -> bytes */
    P_PLAIN,     /* True: the value is b"\x00" + encode(rec) */
    P_PREFIX,    /* bytes: the collection's record key prefix */
    P_PACK,      /* keylib.pack */
    P_INDEXES,   /* tuple of (func, prefix, other_entries, update) */
    P_DECODE,    /* stored value -> record */
    P_SEP,       /* bytes between an index tuple and the record key */
    P_SCALARS,   /* frozenset of the types a key or index value wraps */
    P_AS_TUPLE,  /* key -> tuple, for keys that are not tuples or scalars */
    P_COUNT_NOW, /* txn -> None: count one new record at once */
    P_LEN
};

static PyObject *s_replace, *s_put, *s_delete, *s_zero_byte, *s_one;
/* The MemoryError raised when a failure's undo state cannot be recorded,
 * made in advance (there may be no memory left to make it then): the
 * caller knows it by identity (``LOST``) and spoils the transaction. */
static PyObject *s_lost;

/* The plan's tuple of (func, prefix, other_entries, update), checked. */
static int
check_indexes(PyObject *indexes)
{
    if (!PyTuple_CheckExact(indexes)) {
        PyErr_SetString(PyExc_TypeError, "put: malformed plan");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(indexes); i++) {
        PyObject *idx = PyTuple_GET_ITEM(indexes, i);
        if (!PyTuple_CheckExact(idx) || PyTuple_GET_SIZE(idx) != 4 ||
            !PyBytes_Check(PyTuple_GET_ITEM(idx, 1))) {
            PyErr_SetString(PyExc_TypeError, "put: malformed index in plan");
            return -1;
        }
    }
    return 0;
}

static int
check_plan(PyObject *plan)
{
    if (!PyTuple_CheckExact(plan) || PyTuple_GET_SIZE(plan) != P_LEN) {
        PyErr_SetString(PyExc_TypeError, "put: plan must be the tuple made for it");
        return -1;
    }
    if (!PyBytes_Check(PyTuple_GET_ITEM(plan, P_PREFIX)) ||
        !PyBytes_Check(PyTuple_GET_ITEM(plan, P_SEP)) ||
        !PyTuple_CheckExact(PyTuple_GET_ITEM(plan, P_INDEXES)) ||
        !PyAnySet_Check(PyTuple_GET_ITEM(plan, P_SCALARS))) {
        PyErr_SetString(PyExc_TypeError, "put: malformed plan");
        return -1;
    }
    return check_indexes(PyTuple_GET_ITEM(plan, P_INDEXES));
}

/* a + b + c for bytes a, c and bytes b (c may be NULL). */
static PyObject *
concat3(PyObject *a, PyObject *b, PyObject *c)
{
    if (!PyBytes_Check(a) || !PyBytes_Check(b) || (c && !PyBytes_Check(c))) {
        PyErr_SetString(PyExc_TypeError, "put: index entries must be bytes");
        return NULL;
    }
    Py_ssize_t la = PyBytes_GET_SIZE(a), lb = PyBytes_GET_SIZE(b);
    Py_ssize_t lc = c ? PyBytes_GET_SIZE(c) : 0;
    if (la > PY_SSIZE_T_MAX - lb - lc) {
        return PyErr_NoMemory();
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, la + lb + lc);
    if (out == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, PyBytes_AS_STRING(a), (size_t)la);
    memcpy(p + la, PyBytes_AS_STRING(b), (size_t)lb);
    if (c) {
        memcpy(p + la + lb, PyBytes_AS_STRING(c), (size_t)lc);
    }
    return out;
}

/* pack(value_tuple, prefix), wrapping a scalar into a 1-tuple first. */
static PyObject *
pack_one(PyObject *pack, PyObject *value, PyObject *prefix, int wrap)
{
    PyObject *t = value;
    if (wrap) {
        t = PyTuple_Pack(1, value);
        if (t == NULL) {
            return NULL;
        }
    }
    PyObject *args[2] = {t, prefix};
    PyObject *out = PyObject_Vectorcall(pack, args, prefix ? 2 : 1, NULL);
    if (wrap) {
        Py_DECREF(t);
    }
    return out;
}

/* What Index.entries(rec) returns: () for no record or a None result, a
 * 1-tuple of packed bytes for a scalar or tuple result, else whatever the
 * index's other_entries(result) gives (a set or a 1-tuple). */
static PyObject *
entries_of(PyObject *idx, PyObject *rec, PyObject *pack, PyObject *scalars)
{
    if (rec == Py_None) {
        return PyTuple_New(0);
    }
    PyObject *result = PyObject_CallOneArg(PyTuple_GET_ITEM(idx, 0), rec);
    if (result == NULL) {
        return NULL;
    }
    if (result == Py_None) {
        Py_DECREF(result);
        return PyTuple_New(0);
    }
    PyObject *packed;
    int scalar = PySet_Contains(scalars, (PyObject *)Py_TYPE(result));
    if (scalar < 0) {
        Py_DECREF(result);
        return NULL;
    }
    if (scalar || PyTuple_CheckExact(result)) {
        packed = pack_one(pack, result, PyTuple_GET_ITEM(idx, 1), scalar);
    } else {
        PyObject *other = PyObject_CallOneArg(PyTuple_GET_ITEM(idx, 2), result);
        Py_DECREF(result);
        return other;
    }
    Py_DECREF(result);
    if (packed == NULL) {
        return NULL;
    }
    PyObject *out = PyTuple_Pack(1, packed);
    Py_DECREF(packed);
    return out;
}

/* txn.<name>(a, b) (b may be NULL); returns a new reference or NULL. */
static PyObject *
call_txn(PyObject *txn, PyObject *name, PyObject *a, PyObject *b)
{
    PyObject *args[3] = {txn, a, b};
    return PyObject_VectorcallMethod(name, args, b ? 3 : 2, NULL);
}

/* Append the undo state to the slot, keeping the current exception. */
static void
note_failure(PyObject *slot, PyObject *full, PyObject *old, PyObject *rkey,
             PyObject *old_entries, PyObject *new_entries, int inserted)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *state = Py_BuildValue(
        "(OOOOOO)", full, old ? old : Py_None, rkey,
        old_entries ? old_entries : Py_None, new_entries,
        inserted ? Py_True : Py_False);
    if (state == NULL || PyList_Append(slot, state) < 0) {
        /* Cannot record it: the caller cannot undo, so it must spoil the
         * transaction. Raise LOST, the first error as its context; nothing
         * here allocates. */
        Py_XDECREF(state);
        PyErr_Clear();
        if (value != NULL && value != s_lost && PyExceptionInstance_Check(value)) {
            PyException_SetContext(s_lost, value); /* steals value */
            value = NULL;
        }
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        PyException_SetTraceback(s_lost, Py_None);
        PyErr_Restore(Py_NewRef(PyExc_MemoryError), Py_NewRef(s_lost), NULL);
        return;
    }
    Py_DECREF(state);
    PyErr_Restore(type, value, tb);
}

/* Append ``(key,)`` to the slot, keeping the current exception: the put
 * failed before writing, making or packing the record's key or in
 * ``txn.replace``, and the caller may run it again with ``key`` (the key
 * function is not called twice) if its transaction ended under it. Without
 * room for it the error propagates as it is, and is not retried. */
static void
note_key(PyObject *slot, PyObject *key)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *state = PyTuple_Pack(1, key);
    if (state == NULL || PyList_Append(slot, state) < 0) {
        PyErr_Clear();
    }
    Py_XDECREF(state);
    PyErr_Restore(type, value, tb);
}

/* Write every entry of ``entries`` (an iterable of packed bytes). */
static int
put_entries(PyObject *txn, PyObject *entries, PyObject *tail, PyObject *rkey)
{
    if (PyTuple_CheckExact(entries)) {
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(entries); j++) {
            PyObject *k = concat3(PyTuple_GET_ITEM(entries, j), tail, NULL);
            if (k == NULL) {
                return -1;
            }
            PyObject *r = call_txn(txn, s_put, k, rkey);
            Py_DECREF(k);
            if (r == NULL) {
                return -1;
            }
            Py_DECREF(r);
        }
        return 0;
    }
    PyObject *it = PyObject_GetIter(entries);
    if (it == NULL) {
        return -1;
    }
    PyObject *p;
    while ((p = PyIter_Next(it)) != NULL) {
        PyObject *k = concat3(p, tail, NULL);
        Py_DECREF(p);
        if (k == NULL) {
            Py_DECREF(it);
            return -1;
        }
        PyObject *r = call_txn(txn, s_put, k, rkey);
        Py_DECREF(k);
        if (r == NULL) {
            Py_DECREF(it);
            return -1;
        }
        Py_DECREF(r);
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static int
count_one(PyObject *plan, PyObject *txn, PyObject *cell)
{
    if (cell == Py_None) {
        PyObject *r = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, P_COUNT_NOW), txn);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
        return 0;
    }
    if (!PyList_CheckExact(cell) || PyList_GET_SIZE(cell) < 1) {
        PyErr_SetString(PyExc_TypeError, "put: cell must be a list or None");
        return -1;
    }
    PyObject *n = PyNumber_Add(PyList_GET_ITEM(cell, 0), s_one);
    if (n == NULL) {
        return -1;
    }
    return PyList_SetItem(cell, 0, n); /* steals n */
}

static PyObject *
wp_put(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "put(plan, txn, rec, key, cell, slot)");
        return NULL;
    }
    PyObject *plan = args[0], *txn = args[1], *rec = args[2];
    PyObject *cell = args[4], *slot = args[5];
    if (check_plan(plan) < 0) {
        return NULL;
    }
    if (!PyList_CheckExact(slot)) {
        PyErr_SetString(PyExc_TypeError, "put: slot must be a list");
        return NULL;
    }
    PyObject *pack = PyTuple_GET_ITEM(plan, P_PACK);
    PyObject *scalars = PyTuple_GET_ITEM(plan, P_SCALARS);
    PyObject *indexes = PyTuple_GET_ITEM(plan, P_INDEXES);
    Py_ssize_t nidx;

    PyObject *key = NULL, *payload = NULL, *value = NULL, *new_entries = NULL;
    PyObject *rkey = NULL, *full = NULL, *old = NULL, *tail = NULL;
    PyObject *old_rec = NULL, *old_entries = NULL, *result = NULL;
    Py_INCREF(indexes);

    /* 1. Nothing written yet: errors propagate as they are. */
    if (args[3] != Py_None) {
        key = Py_NewRef(args[3]);
    } else if (PyTuple_GET_ITEM(plan, P_KEY_FUNC) == Py_None) {
        PyErr_SetString(PyExc_TypeError, "put: no key and no key function");
        goto done;
    } else {
        key = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, P_KEY_FUNC), rec);
        if (key == NULL) {
            goto done;
        }
    }
    payload = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, P_ENCODE), rec);
    if (payload == NULL) {
        goto done;
    }
    if (PyObject_IsTrue(PyTuple_GET_ITEM(plan, P_PLAIN))) {
        /* b"\x00" + payload, as Python adds them: a payload that is not
         * exactly bytes may have its own __radd__. */
        value = PyBytes_CheckExact(payload) ? concat3(s_zero_byte, payload, NULL)
                                            : PyNumber_Add(s_zero_byte, payload);
        if (value == NULL) {
            goto done;
        }
    } else {
        value = Py_NewRef(payload);
    }
    /* The key function or the encoder may have changed the collection's
     * indexes (Collection._update_refusal): then the slot's last item is
     * [new indexes], taken here as the Python path reads them now. */
    if (PyList_GET_SIZE(slot) > 0) {
        PyObject *last = PyList_GET_ITEM(slot, PyList_GET_SIZE(slot) - 1);
        if (PyList_CheckExact(last) && PyList_GET_SIZE(last) == 1) {
            PyObject *fresh = Py_NewRef(PyList_GET_ITEM(last, 0));
            Py_SETREF(indexes, fresh);
            if (check_indexes(indexes) < 0) {
                goto done;
            }
        }
    }
    nidx = PyTuple_GET_SIZE(indexes);
    new_entries = PyList_New(nidx);
    if (new_entries == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < nidx; i++) {
        PyObject *e = entries_of(PyTuple_GET_ITEM(indexes, i), rec, pack, scalars);
        if (e == NULL) {
            goto done;
        }
        PyList_SET_ITEM(new_entries, i, e);
    }
    /* From here on a failure before the write leaves (key,) in the slot. */
    if (!PyTuple_CheckExact(key)) {
        int scalar = PySet_Contains(scalars, (PyObject *)Py_TYPE(key));
        if (scalar < 0) {
            note_key(slot, key);
            goto done;
        }
        PyObject *t = scalar ? PyTuple_Pack(1, key)
                             : PyObject_CallOneArg(PyTuple_GET_ITEM(plan, P_AS_TUPLE), key);
        if (t == NULL) {
            note_key(slot, key);
            goto done;
        }
        Py_SETREF(key, t);
    }
    rkey = pack_one(pack, key, NULL, 0);
    if (rkey == NULL) {
        note_key(slot, key);
        goto done;
    }
    if (!PyBytes_Check(rkey)) {
        PyErr_SetString(PyExc_TypeError, "put: pack must return bytes");
        note_key(slot, key);
        goto done;
    }
    full = concat3(PyTuple_GET_ITEM(plan, P_PREFIX), rkey, NULL);
    if (full == NULL) {
        note_key(slot, key);
        goto done;
    }

    /* 2. The record. */
    old = call_txn(txn, s_replace, full, value);
    if (old == NULL) {
        note_key(slot, key);
        goto done;
    }

    /* 3. Its index entries: a failure here leaves undo state in the slot. */
    tail = concat3(PyTuple_GET_ITEM(plan, P_SEP), rkey, NULL);
    if (tail == NULL) {
        note_failure(slot, full, old, rkey, NULL, new_entries, old == Py_None);
        goto done;
    }
    if (old == Py_None) {
        for (Py_ssize_t i = 0; i < nidx; i++) {
            if (put_entries(txn, PyList_GET_ITEM(new_entries, i), tail, rkey) < 0) {
                note_failure(slot, full, NULL, rkey, NULL, new_entries, 1);
                goto done;
            }
        }
        if (count_one(plan, txn, cell) < 0) {
            note_failure(slot, full, NULL, rkey, NULL, new_entries, 1);
            goto done;
        }
        result = Py_NewRef(key);
        goto done;
    }
    if (nidx == 0) {
        result = Py_NewRef(key);
        goto done;
    }
    old_rec = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, P_DECODE), old);
    if (old_rec == NULL) {
        note_failure(slot, full, old, rkey, NULL, new_entries, 0);
        goto done;
    }
    old_entries = PyList_New(nidx);
    if (old_entries == NULL) {
        note_failure(slot, full, old, rkey, NULL, new_entries, 0);
        goto done;
    }
    for (Py_ssize_t i = 0; i < nidx; i++) {
        PyObject *e = entries_of(PyTuple_GET_ITEM(indexes, i), old_rec, pack, scalars);
        if (e == NULL) {
            note_failure(slot, full, old, rkey, NULL, new_entries, 0);
            goto done;
        }
        PyList_SET_ITEM(old_entries, i, e);
    }
    for (Py_ssize_t i = 0; i < nidx; i++) {
        PyObject *o = PyList_GET_ITEM(old_entries, i);
        PyObject *n = PyList_GET_ITEM(new_entries, i);
        int same = PyObject_RichCompareBool(o, n, Py_EQ);
        if (same < 0) {
            note_failure(slot, full, old, rkey, old_entries, new_entries, 0);
            goto done;
        }
        if (same) {
            continue;
        }
        if (PyTuple_CheckExact(o) && PyTuple_GET_SIZE(o) == 1 &&
            PyTuple_CheckExact(n) && PyTuple_GET_SIZE(n) == 1) {
            /* Index.update's single-valued case, inlined. */
            PyObject *ok = concat3(PyTuple_GET_ITEM(o, 0), tail, NULL);
            PyObject *r = ok ? call_txn(txn, s_delete, ok, NULL) : NULL;
            Py_XDECREF(ok);
            if (r != NULL) {
                Py_DECREF(r);
                PyObject *nk = concat3(PyTuple_GET_ITEM(n, 0), tail, NULL);
                r = nk ? call_txn(txn, s_put, nk, rkey) : NULL;
                Py_XDECREF(nk);
            }
            if (r == NULL) {
                note_failure(slot, full, old, rkey, old_entries, new_entries, 0);
                goto done;
            }
            Py_DECREF(r);
            continue;
        }
        PyObject *uargs[4] = {txn, rkey, o, n};
        PyObject *update = PyTuple_GET_ITEM(PyTuple_GET_ITEM(indexes, i), 3);
        PyObject *r = PyObject_Vectorcall(update, uargs, 4, NULL);
        if (r == NULL) {
            note_failure(slot, full, old, rkey, old_entries, new_entries, 0);
            goto done;
        }
        Py_DECREF(r);
    }
    result = Py_NewRef(key);

done:
    Py_DECREF(indexes);
    Py_XDECREF(key);
    Py_XDECREF(payload);
    Py_XDECREF(value);
    Py_XDECREF(new_entries);
    Py_XDECREF(rkey);
    Py_XDECREF(full);
    Py_XDECREF(old);
    Py_XDECREF(tail);
    Py_XDECREF(old_rec);
    Py_XDECREF(old_entries);
    return result;
}

static PyMethodDef wp_methods[] = {
    {"put", (PyCFunction)(void (*)(void))wp_put, METH_FASTCALL,
     "put(plan, txn, rec, key, cell, slot) -> key: the hot part of Collection.put."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "acid._writepath",
    .m_doc = "The hot part of Collection.put, in C (see acid/collection.py).",
    .m_size = -1,
    .m_methods = wp_methods,
};

PyMODINIT_FUNC
PyInit__writepath(void)
{
    s_replace = PyUnicode_InternFromString("replace");
    s_put = PyUnicode_InternFromString("put");
    s_delete = PyUnicode_InternFromString("delete");
    s_zero_byte = PyBytes_FromStringAndSize("\0", 1);
    s_one = PyLong_FromLong(1);
    s_lost = PyObject_CallFunction(
        PyExc_MemoryError, "s", "put failed half-way and its undo state was lost");
    if (!s_replace || !s_put || !s_delete || !s_zero_byte || !s_one || !s_lost) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&wp_module);
    if (m != NULL && PyModule_AddObjectRef(m, "LOST", s_lost) < 0) {
        Py_CLEAR(m);
    }
    return m;
}
