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
 *    propagates and nothing was written. Index functions see the record as
 *    a read will give it back: ``rec`` when ``plan[P_EXACT](rec)`` says the
 *    encoder gives it back unchanged, else ``plan[P_STORED](rec, value)``
 *    (which refuses a record that would not come back whole). An error in
 *    making the key a tuple or packing it appends ``(key,)`` to the list
 *    ``slot`` first, so that the caller can run the put again with that
 *    key, on its own, when its transaction ended under it (as the Python
 *    code does).
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
#include <structmember.h>

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
    P_EXACT,     /* rec -> bool: the encoder surely gives rec back as it is */
    P_STORED,    /* (rec, value) -> rec as a read of value gives it back */
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
put_impl(PyObject *plan, PyObject *txn, PyObject *rec, PyObject *key_arg,
         PyObject *cell, PyObject *slot)
{
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
    PyObject *seen = NULL; /* rec as a read gives it back */
    Py_INCREF(indexes);

    /* 1. Nothing written yet: errors propagate as they are. */
    if (key_arg != Py_None) {
        key = Py_NewRef(key_arg);
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
    seen = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, P_EXACT), rec);
    if (seen == NULL) {
        goto done;
    }
    if (seen == Py_True) {
        Py_SETREF(seen, Py_NewRef(rec));
    } else {
        int exact = PyObject_IsTrue(seen);
        if (exact < 0) {
            goto done;
        }
        Py_SETREF(seen, exact ? Py_NewRef(rec)
                              : PyObject_CallFunctionObjArgs(
                                    PyTuple_GET_ITEM(plan, P_STORED), rec, value, NULL));
        if (seen == NULL) {
            goto done;
        }
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
        PyObject *e = entries_of(PyTuple_GET_ITEM(indexes, i), seen, pack, scalars);
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
    Py_XDECREF(seen);
    Py_XDECREF(new_entries);
    Py_XDECREF(rkey);
    Py_XDECREF(full);
    Py_XDECREF(old);
    Py_XDECREF(tail);
    Py_XDECREF(old_rec);
    Py_XDECREF(old_entries);
    return result;
}

static PyObject *
wp_put(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "put(plan, txn, rec, key, cell, slot)");
        return NULL;
    }
    return put_impl(args[0], args[1], args[2], args[3], args[4], args[5]);
}

/* PutBase: the base class of acid.Collection whose ``put`` (and ``get``)
 * run the C path without a Python frame. It reads two attributes that Collection keeps:
 * ``_fast`` (see Collection._writable: ``(txn, plan, cell, slot)``) and
 * ``_ctx_get`` (returns the active transaction). Whatever it does not serve
 * itself it hands to ``self._put`` (the Python reference, same arguments);
 * a failure of the C path goes to ``self._put_failed(exc, txn, rec, key,
 * slot)``, which undoes what was written and raises, or runs the put again
 * on its own (see Collection). */
typedef struct {
    PyObject_HEAD
    PyObject *fast;
    PyObject *ctx_get;
    PyObject *getplan;
} PutBase;

static PyObject *s_put_py, *s_put_failed, *s_key, *s_ttl;
static PyObject *s_get_py, *s_get, *s_ended, *s_default, *s_raw;

/* ``getplan``: what get needs, or None where Collection._get must run
 * (a detached collection): (key prefix, keylib.pack, as_tuple, engine.get,
 * unpack, codec.decode, codec.corrupt, _txn.check_ended). */
enum {
    G_PREFIX,
    G_PACK,
    G_AS_TUPLE,
    G_ENGINE_GET,
    G_UNPACK,
    G_DECODE,
    G_CORRUPT,
    G_CHECK_ENDED,
    G_LEN
};

/* self.<name>(*args, **kwargs): the Python code, for what C leaves to it. */
static PyObject *
forward(PyObject *name, PyObject *self, PyObject *const *args, size_t nargsf,
        PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *small[8];
    PyObject **all = small;
    if (nargs + nkw + 1 > 8) {
        all = PyMem_Malloc((size_t)(nargs + nkw + 1) * sizeof(PyObject *));
        if (all == NULL) {
            return PyErr_NoMemory();
        }
    }
    all[0] = self;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++) {
        all[i + 1] = args[i];
    }
    PyObject *out = PyObject_VectorcallMethod(name, all, (size_t)(nargs + 1), kwnames);
    if (all != small) {
        PyMem_Free(all);
    }
    return out;
}

#define pb_forward(self, args, nargsf, kwnames) forward(s_put_py, self, args, nargsf, kwnames)
#define pb_forward_get(self, args, nargsf, kwnames) \
    forward(s_get_py, self, args, nargsf, kwnames)

static PyObject *
pb_put(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *rec, *key = Py_None;
    if (nargs < 1 || nargs > 2) {
        return pb_forward(self, args, (size_t)nargs, kwnames);
    }
    rec = args[0];
    if (nargs == 2) {
        key = args[1];
    }
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            PyObject *value = args[nargs + i];
            if (name == s_key && nargs == 1) {
                key = value;
            } else if (!(name == s_ttl && value == Py_None)) {
                /* ttl, or anything the Python signature must judge */
                return pb_forward(self, args, (size_t)nargs, kwnames);
            }
        }
    }
    PutBase *pb = (PutBase *)self;
    PyObject *fast = pb->fast;
    if (fast == NULL || !PyTuple_CheckExact(fast) || PyTuple_GET_SIZE(fast) != 4 ||
        pb->ctx_get == NULL) {
        return pb_forward(self, args, (size_t)nargs, kwnames);
    }
    Py_INCREF(fast); /* a key function may replace self._fast meanwhile */
    PyObject *txn = PyObject_CallNoArgs(pb->ctx_get);
    if (txn == NULL) {
        Py_DECREF(fast);
        return NULL;
    }
    PyObject *plan = PyTuple_GET_ITEM(fast, 1);
    if (txn != PyTuple_GET_ITEM(fast, 0) || !PyTuple_CheckExact(plan) ||
        PyTuple_GET_SIZE(plan) != P_LEN ||
        (key == Py_None && PyTuple_GET_ITEM(plan, P_KEY_FUNC) == Py_None)) {
        Py_DECREF(txn);
        Py_DECREF(fast);
        return pb_forward(self, args, (size_t)nargs, kwnames);
    }
    PyObject *slot = PyTuple_GET_ITEM(fast, 3);
    PyObject *out = put_impl(plan, txn, rec, key, PyTuple_GET_ITEM(fast, 2), slot);
    if (out == NULL) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (value == NULL) { /* cannot happen: an error is set */
            value = Py_NewRef(Py_None);
        }
        if (tb != NULL) {
            PyException_SetTraceback(value, tb);
        }
        PyObject *fargs[6] = {self, value, txn, rec, key, slot};
        out = PyObject_VectorcallMethod(s_put_failed, fargs, 6, NULL);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    }
    Py_DECREF(txn);
    Py_DECREF(fast);
    return out;
}

/* With the encoder's error set: ``raise corrupt(exc) from exc``, as
 * Collection._get does (the encoder runs once: a second try might answer). */
static void
raise_corrupt(PyObject *corrupt)
{
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    Py_XDECREF(type);
    if (exc == NULL) { /* cannot happen: an error is set */
        Py_XDECREF(tb);
        PyErr_SetString(PyExc_SystemError, "get: no error to report");
        return;
    }
    if (tb != NULL) {
        PyException_SetTraceback(exc, tb);
        Py_DECREF(tb);
    }
    PyObject *err = PyObject_CallOneArg(corrupt, exc);
    if (err == NULL) {
        Py_DECREF(exc);
        return;
    }
    if (!PyExceptionInstance_Check(err)) {
        Py_DECREF(err);
        Py_DECREF(exc);
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
        return;
    }
    PyException_SetContext(err, Py_NewRef(exc));
    PyException_SetCause(err, exc); /* steals exc; sets __suppress_context__ */
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(err)), err, NULL);
}

/* Collection.get's usual case (not raw, a live collection): the steps of
 * Collection._get, which runs every other case (and the calls the C code
 * cannot judge: missing, extra or repeated arguments). */
static PyObject *
pb_get(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1 || nargs > 3) {
        return pb_forward_get(self, args, (size_t)nargs, kwnames);
    }
    PyObject *key = args[0];
    PyObject *deflt = nargs >= 2 ? args[1] : Py_None;
    PyObject *raw = nargs >= 3 ? args[2] : Py_False;
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            if (name == s_default && nargs < 2) {
                deflt = args[nargs + i];
            } else if (name == s_raw && nargs < 3) {
                raw = args[nargs + i];
            } else {
                return pb_forward_get(self, args, (size_t)nargs, kwnames);
            }
        }
    }
    PutBase *pb = (PutBase *)self;
    PyObject *plan = pb->getplan;
    if (raw != Py_False || plan == NULL || !PyTuple_CheckExact(plan) ||
        PyTuple_GET_SIZE(plan) != G_LEN || pb->ctx_get == NULL ||
        !PyBytes_Check(PyTuple_GET_ITEM(plan, G_PREFIX))) {
        return pb_forward_get(self, args, (size_t)nargs, kwnames);
    }
    Py_INCREF(plan);
    PyObject *tup = NULL, *full = NULL, *txn = NULL, *value = NULL, *out = NULL;
    if (PyTuple_CheckExact(key)) {
        tup = Py_NewRef(key);
    } else {
        tup = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, G_AS_TUPLE), key);
        if (tup == NULL) {
            goto done;
        }
    }
    full = pack_one(PyTuple_GET_ITEM(plan, G_PACK), tup, PyTuple_GET_ITEM(plan, G_PREFIX), 0);
    if (full == NULL) {
        goto done;
    }
    txn = PyObject_CallNoArgs(pb->ctx_get);
    if (txn == NULL) {
        goto done;
    }
    if (txn == Py_None) {
        value = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, G_ENGINE_GET), full);
    } else {
        PyObject *ended = PyObject_GetAttr(txn, s_ended);
        if (ended == NULL) {
            goto done;
        }
        int is_ended = PyObject_IsTrue(ended);
        Py_DECREF(ended);
        if (is_ended < 0) {
            goto done;
        }
        if (is_ended) {
            /* Inherited from a finished block (read on its own), or ended
             * under a block that still runs (TxnError): as Collection._get,
             * without running the key's conversion or the context again. */
            PyObject *checked = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, G_CHECK_ENDED), txn);
            if (checked == NULL) {
                goto done;
            }
            Py_DECREF(checked);
            value = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, G_ENGINE_GET), full);
        } else {
            value = call_txn(txn, s_get, full, NULL);
        }
    }
    if (value == NULL) {
        goto done;
    }
    if (value == Py_None) {
        out = Py_NewRef(deflt);
        goto done;
    }
    if (PyBytes_CheckExact(value) && PyBytes_GET_SIZE(value) > 0 &&
        PyBytes_AS_STRING(value)[0] == 0) {
        /* The plain case, as Collection._get inlines it (exact bytes only:
         * a subclass's own indexing decides, in the codec). */
        PyObject *data = PyBytes_FromStringAndSize(PyBytes_AS_STRING(value) + 1,
                                                   PyBytes_GET_SIZE(value) - 1);
        if (data == NULL) {
            goto done;
        }
        out = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, G_UNPACK), data);
        Py_DECREF(data);
        if (out == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
            raise_corrupt(PyTuple_GET_ITEM(plan, G_CORRUPT));
        }
        goto done;
    }
    out = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, G_DECODE), value);

done:
    Py_XDECREF(tup);
    Py_XDECREF(full);
    Py_XDECREF(txn);
    Py_XDECREF(value);
    Py_DECREF(plan);
    return out;
}

static int
pb_traverse(PutBase *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->fast);
    Py_VISIT(self->ctx_get);
    Py_VISIT(self->getplan);
    return 0;
}

static int
pb_clear(PutBase *self)
{
    Py_CLEAR(self->fast);
    Py_CLEAR(self->ctx_get);
    Py_CLEAR(self->getplan);
    return 0;
}

static void
pb_dealloc(PutBase *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    pb_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMemberDef pb_members[] = {
    {"_fast", T_OBJECT, offsetof(PutBase, fast), 0,
     "(transaction, plan, count cell, undo slot) of the C path, or None"},
    {"_ctx_get", T_OBJECT, offsetof(PutBase, ctx_get), 0,
     "returns the active transaction"},
    {"_getplan", T_OBJECT, offsetof(PutBase, getplan), 0,
     "what get needs, or None (see Collection._update_refusal)"},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef pb_methods[] = {
    {"get", (PyCFunction)(void (*)(void))pb_get, METH_FASTCALL | METH_KEYWORDS,
     "get($self, /, key, default=None, raw=False)\n--\n\n"
     "The record under ``key`` (a scalar is a 1-tuple), or ``default``.\n\n"
     "With ``raw=True``, the encoded bytes instead of the decoded record."},
    {"put", (PyCFunction)(void (*)(void))pb_put, METH_FASTCALL | METH_KEYWORDS,
     "put($self, /, rec, key=None, *, ttl=None)\n--\n\n"
     "Create or replace a record; return its key.\n\n"
     "``key`` overrides the key function (a scalar becomes a 1-tuple).\n"
     "``ttl``: seconds until the record expires, :data:`acid.FOREVER`, or\n"
     "``None`` for the collection's default (see \"Expiry\" below).\n"
     "Index entries change in the same transaction as the record. A put\n"
     "that fails (an index function or encoder that raises, a value the\n"
     "engine rejects) changes nothing, so the caller may catch the error\n"
     "and commit the rest of the transaction."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot pb_slots[] = {
    {Py_tp_doc, "Base class of acid.Collection: put without a Python frame."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, pb_dealloc},
    {Py_tp_traverse, pb_traverse},
    {Py_tp_clear, pb_clear},
    {Py_tp_members, pb_members},
    {Py_tp_methods, pb_methods},
    {0, NULL},
};

static PyType_Spec pb_spec = {
    .name = "acid._writepath.PutBase",
    .basicsize = sizeof(PutBase),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = pb_slots,
};

/* keys, values and index entries of many records, for put_many:
 *
 * prepare_many(plan, recs, keys, encode) -> (keys, rkeys, fulls, values, news)
 *
 * ``keys`` is None (the key function makes them) or the list of keys.
 * ``encode`` packs a record (the bulk packer). In the order put_many's
 * Python code takes: every key first, then every value, then the entries of
 * each index for every record (``news[i][j]``: index i, record j). Nothing
 * is written, so an error simply propagates. */
static PyObject *
wp_prepare_many(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "prepare_many(plan, recs, keys, encode)");
        return NULL;
    }
    PyObject *plan = args[0], *recs = args[1], *given = args[2], *encode = args[3];
    if (check_plan(plan) < 0) {
        return NULL;
    }
    if (!PyList_CheckExact(recs) || (given != Py_None && !PyList_CheckExact(given))) {
        PyErr_SetString(PyExc_TypeError, "prepare_many: recs and keys must be lists");
        return NULL;
    }
    PyObject *pack = PyTuple_GET_ITEM(plan, P_PACK);
    PyObject *scalars = PyTuple_GET_ITEM(plan, P_SCALARS);
    PyObject *indexes = PyTuple_GET_ITEM(plan, P_INDEXES);
    PyObject *prefix = PyTuple_GET_ITEM(plan, P_PREFIX);
    PyObject *key_func = PyTuple_GET_ITEM(plan, P_KEY_FUNC);
    Py_ssize_t nidx = PyTuple_GET_SIZE(indexes);
    int plain = PyObject_IsTrue(PyTuple_GET_ITEM(plan, P_PLAIN));
    if (plain < 0) {
        return NULL;
    }
    if (given == Py_None && key_func == Py_None) {
        PyErr_SetString(PyExc_TypeError, "prepare_many: no keys and no key function");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(recs);
    if (given != Py_None && PyList_GET_SIZE(given) != n) {
        PyErr_SetString(PyExc_ValueError, "prepare_many: one key per record");
        return NULL;
    }
    PyObject *keys = PyList_New(n), *rkeys = PyList_New(n), *fulls = PyList_New(n);
    PyObject *values = PyList_New(n), *news = PyList_New(nidx), *out = NULL;
    if (!keys || !rkeys || !fulls || !values || !news) {
        goto done;
    }
    /* The list may change under a key function: index it as it is now. */
    for (Py_ssize_t j = 0; j < n; j++) {
        if (j >= PyList_GET_SIZE(recs)) {
            PyErr_SetString(PyExc_RuntimeError, "records changed during put_many");
            goto done;
        }
        PyObject *key;
        if (given != Py_None) {
            if (j >= PyList_GET_SIZE(given)) {
                PyErr_SetString(PyExc_RuntimeError, "keys changed during put_many");
                goto done;
            }
            key = Py_NewRef(PyList_GET_ITEM(given, j));
        } else {
            PyObject *rec = Py_NewRef(PyList_GET_ITEM(recs, j));
            key = PyObject_CallOneArg(key_func, rec);
            Py_DECREF(rec);
            if (key == NULL) {
                goto done;
            }
        }
        if (!PyTuple_CheckExact(key)) {
            int scalar = PySet_Contains(scalars, (PyObject *)Py_TYPE(key));
            PyObject *t = NULL;
            if (scalar > 0) {
                t = PyTuple_Pack(1, key);
            } else if (scalar == 0) {
                t = PyObject_CallOneArg(PyTuple_GET_ITEM(plan, P_AS_TUPLE), key);
            }
            Py_DECREF(key);
            if (t == NULL) {
                goto done;
            }
            key = t;
        }
        PyList_SET_ITEM(keys, j, key);
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        if (j >= PyList_GET_SIZE(recs)) {
            PyErr_SetString(PyExc_RuntimeError, "records changed during put_many");
            goto done;
        }
        PyObject *rec = Py_NewRef(PyList_GET_ITEM(recs, j));
        PyObject *payload = PyObject_CallOneArg(encode, rec);
        Py_DECREF(rec);
        if (payload == NULL) {
            goto done;
        }
        PyObject *value = plain ? PySequence_Concat(s_zero_byte, payload)
                                : Py_NewRef(payload);
        Py_DECREF(payload);
        if (value == NULL) {
            goto done;
        }
        PyList_SET_ITEM(values, j, value);
    }
    for (Py_ssize_t i = 0; i < nidx; i++) {
        PyObject *col = PyList_New(n);
        if (col == NULL) {
            goto done;
        }
        PyList_SET_ITEM(news, i, col);
        PyObject *idx = PyTuple_GET_ITEM(indexes, i);
        for (Py_ssize_t j = 0; j < n; j++) {
            if (j >= PyList_GET_SIZE(recs)) {
                PyErr_SetString(PyExc_RuntimeError, "records changed during put_many");
                goto done;
            }
            PyObject *rec = Py_NewRef(PyList_GET_ITEM(recs, j));
            PyObject *e = entries_of(idx, rec, pack, scalars);
            Py_DECREF(rec);
            if (e == NULL) {
                goto done;
            }
            PyList_SET_ITEM(col, j, e);
        }
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *rkey = pack_one(pack, PyList_GET_ITEM(keys, j), NULL, 0);
        if (rkey == NULL) {
            goto done;
        }
        PyList_SET_ITEM(rkeys, j, rkey);
        PyObject *full = concat3(prefix, rkey, NULL);
        if (full == NULL) {
            goto done;
        }
        PyList_SET_ITEM(fulls, j, full);
    }
    out = PyTuple_Pack(5, keys, rkeys, fulls, values, news);

done:
    Py_XDECREF(keys);
    Py_XDECREF(rkeys);
    Py_XDECREF(fulls);
    Py_XDECREF(values);
    Py_XDECREF(news);
    return out;
}

/* The pairs to write for records none of which was stored:
 *
 * new_pairs(fulls, values, news, rkeys, sep) -> [(key, value), ...]
 *
 * every (full, value), then for each index every entry of every record:
 * (entry + sep + rkey, rkey), as Index.entry_pairs makes them. */
static PyObject *
wp_new_pairs(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "new_pairs(fulls, values, news, rkeys, sep)");
        return NULL;
    }
    PyObject *fulls = args[0], *values = args[1], *news = args[2], *rkeys = args[3];
    PyObject *sep = args[4];
    if (!PyList_CheckExact(fulls) || !PyList_CheckExact(values) ||
        !PyList_CheckExact(news) || !PyList_CheckExact(rkeys) || !PyBytes_Check(sep)) {
        PyErr_SetString(PyExc_TypeError, "new_pairs: lists and bytes expected");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(fulls);
    if (PyList_GET_SIZE(values) != n || PyList_GET_SIZE(rkeys) != n) {
        PyErr_SetString(PyExc_ValueError, "new_pairs: lists of different lengths");
        return NULL;
    }
    PyObject *pairs = PyList_New(0);
    if (pairs == NULL) {
        return NULL;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *pair = PyTuple_Pack(2, PyList_GET_ITEM(fulls, j),
                                      PyList_GET_ITEM(values, j));
        if (pair == NULL || PyList_Append(pairs, pair) < 0) {
            Py_XDECREF(pair);
            goto fail;
        }
        Py_DECREF(pair);
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(news); i++) {
        PyObject *col = PyList_GET_ITEM(news, i);
        if (!PyList_CheckExact(col) || PyList_GET_SIZE(col) != n) {
            PyErr_SetString(PyExc_ValueError, "new_pairs: one entry set per record");
            goto fail;
        }
        for (Py_ssize_t j = 0; j < n; j++) {
            PyObject *rkey = PyList_GET_ITEM(rkeys, j);
            if (!PyBytes_Check(rkey)) {
                PyErr_SetString(PyExc_TypeError, "new_pairs: rkeys must be bytes");
                goto fail;
            }
            PyObject *it = PyObject_GetIter(PyList_GET_ITEM(col, j));
            if (it == NULL) {
                goto fail;
            }
            PyObject *p;
            while ((p = PyIter_Next(it)) != NULL) {
                PyObject *k = concat3(p, sep, rkey);
                Py_DECREF(p);
                PyObject *pair = k ? PyTuple_Pack(2, k, rkey) : NULL;
                Py_XDECREF(k);
                if (pair == NULL || PyList_Append(pairs, pair) < 0) {
                    Py_XDECREF(pair);
                    Py_DECREF(it);
                    goto fail;
                }
                Py_DECREF(pair);
            }
            Py_DECREF(it);
            if (PyErr_Occurred()) {
                goto fail;
            }
        }
    }
    return pairs;

fail:
    Py_DECREF(pairs);
    return NULL;
}

static PyMethodDef wp_methods[] = {
    {"prepare_many", (PyCFunction)(void (*)(void))wp_prepare_many, METH_FASTCALL,
     "prepare_many(plan, recs, keys, encode) -> (keys, rkeys, fulls, values, news)"},
    {"new_pairs", (PyCFunction)(void (*)(void))wp_new_pairs, METH_FASTCALL,
     "new_pairs(fulls, values, news, rkeys, sep) -> pairs of new records"},
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
    s_get_py = PyUnicode_InternFromString("_get");
    s_get = PyUnicode_InternFromString("get");
    s_ended = PyUnicode_InternFromString("ended");
    s_default = PyUnicode_InternFromString("default");
    s_raw = PyUnicode_InternFromString("raw");
    if (!s_get_py || !s_get || !s_ended || !s_default || !s_raw) {
        return NULL;
    }
    s_put_py = PyUnicode_InternFromString("_put");
    s_put_failed = PyUnicode_InternFromString("_put_failed");
    s_key = PyUnicode_InternFromString("key");
    s_ttl = PyUnicode_InternFromString("ttl");
    s_lost = PyObject_CallFunction(
        PyExc_MemoryError, "s", "put failed half-way and its undo state was lost");
    if (!s_replace || !s_put || !s_delete || !s_zero_byte || !s_one || !s_put_py ||
        !s_put_failed || !s_key || !s_ttl || !s_lost) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&wp_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "LOST", s_lost) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    PyObject *type = PyType_FromSpec(&pb_spec);
    if (type == NULL || PyModule_AddObject(module, "PutBase", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
