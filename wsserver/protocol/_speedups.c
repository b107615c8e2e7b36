/* Optional C accelerator for wsserver's frame layer.
 *
 * Four functions and a type, each the twin of a pure-Python reference in
 * wsserver/protocol/frames.py (the reference defines what they do; a
 * Hypothesis test in tests/test_speedups.py feeds both the same input):
 *
 *   apply_mask(data, mask) -> bytes
 *       data XOR the 4-byte mask repeated.
 *   read_messages(buf, pos, max_size) -> (list, pos)
 *       the whole, final, masked, unfragmented text and binary frames at
 *       buf[pos:], unmasked (text decoded from UTF-8) in one call; stops at the
 *       first frame that is anything else, incomplete, over max_size or (text)
 *       not valid UTF-8, and returns where it stopped.
 *   read_close(buf, pos) -> (code, reason, pos) or None
 *       a whole, valid, masked close frame at buf[pos:], in one call (the
 *       closing handshake's); None when the frame there is anything else,
 *       incomplete, or an invalid close frame.
 *   build_frame(opcode, payload, fin, rsv1) -> bytes
 *       an unmasked frame: header and payload (str: its UTF-8) in one object.
 *   PayloadBuffer(size): .add(masked, mask), .take() -> bytes
 *       a large frame's payload, unmasked into its final bytes object as it
 *       arrives.
 *
 * wsserver uses the pure-Python versions when this module is not built (no
 * compiler) or WSSERVER_NO_SPEEDUPS is set.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* out[i] = in[i] ^ m[i % 4] for i < n, 8 bytes at a time. */
static void
unmask(const unsigned char *in, unsigned char *out, Py_ssize_t n, const unsigned char *m)
{
    const unsigned char m8[8] = {m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]};
    uint64_t key;
    Py_ssize_t i = 0;

    memcpy(&key, m8, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, in + i, 8);
        word ^= key;
        memcpy(out + i, &word, 8);
    }
    for (; i < n; i++) {
        out[i] = in[i] ^ m[i & 3];
    }
}

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    PyObject *result = NULL;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_mask() takes exactly 2 arguments");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result != NULL) {
        unmask((const unsigned char *)data.buf, (unsigned char *)PyBytes_AS_STRING(result),
               data.len, (const unsigned char *)mask.buf);
    }
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

/* Get obj's bytes into view, pos within them (their end included): 0; else
 * -1 with an exception set and nothing held (read_messages', read_close's). */
static int
buffer_at(PyObject *obj, Py_ssize_t pos, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (pos < 0 || pos > view->len) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return -1;
    }
    return 0;
}

/* Text payloads up to this size are unmasked on the stack before decoding. */
#define STACK_TEXT 2048

static PyObject *
read_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos;
    long long max_size = -1; /* -1: no limit */
    PyObject *messages = NULL, *result = NULL, *end_pos = NULL;
    unsigned char stack[STACK_TEXT];

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_messages() takes exactly 3 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (args[2] != Py_None) {
        int overflow;
        max_size = PyLong_AsLongLongAndOverflow(args[2], &overflow);
        if (max_size == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (overflow > 0) {
            max_size = -1; /* larger than any frame can be */
        }
        else if (overflow < 0 || max_size < 0) {
            PyErr_SetString(PyExc_ValueError, "max_size must be None or >= 0");
            return NULL;
        }
    }
    if (buffer_at(args[0], pos, &view) < 0) {
        return NULL;
    }
    messages = PyList_New(0);
    if (messages == NULL) {
        goto done;
    }
    {
        const unsigned char *buf = (const unsigned char *)view.buf;
        const Py_ssize_t end = view.len;

        for (;;) {
            Py_ssize_t avail = end - pos, hlen = 6;
            unsigned long long n;
            unsigned char b0, b1;
            PyObject *message;

            if (avail < 2) {
                break;
            }
            b0 = buf[pos];
            b1 = buf[pos + 1];
            if ((b0 != 0x81 && b0 != 0x82) || b1 < 0x80) {
                break; /* not a final text/binary frame without RSV bits, or unmasked */
            }
            n = b1 & 0x7F;
            if (n == 126) {
                if (avail < 4) {
                    break;
                }
                n = ((unsigned long long)buf[pos + 2] << 8) | buf[pos + 3];
                if (n < 126) {
                    break; /* not in the fewest bytes: the general path fails it */
                }
                hlen = 8;
            }
            else if (n == 127) {
                int k;
                if (avail < 10) {
                    break;
                }
                n = 0;
                for (k = 2; k < 10; k++) {
                    n = (n << 8) | buf[pos + k];
                }
                if ((n >> 63) || n < 0x10000) {
                    break;
                }
                hlen = 14;
            }
            if (max_size >= 0 && n > (unsigned long long)max_size) {
                break;
            }
            if (avail < hlen || (unsigned long long)(avail - hlen) < n) {
                break;
            }
            {
                const unsigned char *mask = buf + pos + hlen - 4;
                const unsigned char *payload = buf + pos + hlen;
                Py_ssize_t size = (Py_ssize_t)n;

                if (b0 == 0x82) {
                    message = PyBytes_FromStringAndSize(NULL, size);
                    if (message == NULL) {
                        goto fail;
                    }
                    unmask(payload, (unsigned char *)PyBytes_AS_STRING(message), size, mask);
                }
                else {
                    unsigned char *text = size <= STACK_TEXT ? stack : PyMem_Malloc(size);
                    if (text == NULL) {
                        PyErr_NoMemory();
                        goto fail;
                    }
                    unmask(payload, text, size, mask);
                    message = PyUnicode_DecodeUTF8((const char *)text, size, NULL);
                    if (text != stack) {
                        PyMem_Free(text);
                    }
                    if (message == NULL) {
                        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                            goto fail;
                        }
                        PyErr_Clear(); /* left for the general path, which fails it */
                        break;
                    }
                }
                if (PyList_Append(messages, message) < 0) {
                    Py_DECREF(message);
                    goto fail;
                }
                Py_DECREF(message);
                pos += hlen + size;
            }
        }
    }
    /* (PyTuple_Pack: Py_BuildValue parses its format on every call) */
    end_pos = PyLong_FromSsize_t(pos);
    if (end_pos != NULL) {
        result = PyTuple_Pack(2, messages, end_pos);
        Py_DECREF(end_pos);
    }
fail:
    Py_DECREF(messages);
done:
    PyBuffer_Release(&view);
    return result;
}

/* The close codes a close frame may carry (RFC 6455 7.4; frames.is_valid_close_code). */
static int
valid_close_code(unsigned int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static PyObject *
read_close(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, n;
    PyObject *result = NULL, *reason = NULL;
    unsigned char payload[125];
    const unsigned char *buf;
    unsigned int code = 1005; /* an empty payload: no code (NO_STATUS_RCVD) */

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "read_close() takes exactly 2 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (buffer_at(args[0], pos, &view) < 0) {
        return NULL;
    }
    buf = (const unsigned char *)view.buf + pos;
    /* A final close frame without RSV bits, masked, its length in one byte
     * (a control frame's is at most 125), whole: anything else is the general
     * path's to read or to fail. */
    if (view.len - pos < 6 || buf[0] != 0x88 || buf[1] < 0x80 || (buf[1] & 0x7F) > 125) {
        goto none;
    }
    n = buf[1] & 0x7F;
    if (view.len - pos - 6 < n || n == 1) {
        goto none; /* incomplete, or a 1-byte payload (no code: invalid) */
    }
    if (n == 0) {
        reason = PyUnicode_FromStringAndSize("", 0);
    }
    else {
        unmask(buf + 6, payload, n, buf + 2);
        code = ((unsigned int)payload[0] << 8) | payload[1];
        if (!valid_close_code(code)) {
            goto none;
        }
        reason = PyUnicode_DecodeUTF8((const char *)payload + 2, n - 2, NULL);
    }
    if (reason == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear(); /* left for the general path, which fails it */
            goto none;
        }
        goto done;
    }
    {
        PyObject *code_obj = PyLong_FromUnsignedLong(code);
        PyObject *end = PyLong_FromSsize_t(pos + 6 + n);
        if (code_obj != NULL && end != NULL) {
            result = PyTuple_Pack(3, code_obj, reason, end);
        }
        Py_XDECREF(code_obj);
        Py_XDECREF(end);
        Py_DECREF(reason);
    }
    goto done;
none:
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
build_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    const char *data;
    Py_ssize_t n, hlen;
    long opcode;
    int fin, rsv1, is_buffer = 0;
    PyObject *result = NULL, *encoded = NULL;
    unsigned char *out;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "build_frame() takes exactly 4 arguments");
        return NULL;
    }
    opcode = PyLong_AsLong(args[0]);
    if (opcode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (opcode < 0 || opcode > 15) {
        PyErr_SetString(PyExc_ValueError, "opcode must be 0-15");
        return NULL;
    }
    fin = PyObject_IsTrue(args[2]);
    if (fin < 0) {
        return NULL;
    }
    rsv1 = PyObject_IsTrue(args[3]);
    if (rsv1 < 0) {
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    /* PyUnicode_IS_ASCII needs a "ready" str (a legacy one, made by a C API
       that 3.12 removed, may not be yet). */
    if (PyUnicode_Check(args[1]) && PyUnicode_READY(args[1]) < 0) {
        return NULL;
    }
#endif
    if (PyUnicode_Check(args[1]) && PyUnicode_IS_ASCII(args[1])) {
        /* An ASCII str is its own UTF-8: nothing is copied or cached. */
        data = PyUnicode_AsUTF8AndSize(args[1], &n);
        if (data == NULL) {
            return NULL;
        }
    }
    else if (PyUnicode_Check(args[1])) {
        /* Encoded apart: PyUnicode_AsUTF8AndSize would keep the UTF-8 inside the str. */
        encoded = PyUnicode_AsUTF8String(args[1]);
        if (encoded == NULL) {
            return NULL;
        }
        data = PyBytes_AS_STRING(encoded);
        n = PyBytes_GET_SIZE(encoded);
    }
    else {
        if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        is_buffer = 1;
        data = (const char *)view.buf;
        n = view.len;
    }
    hlen = n < 126 ? 2 : n < 0x10000 ? 4 : 10;
    result = PyBytes_FromStringAndSize(NULL, hlen + n);
    if (result != NULL) {
        out = (unsigned char *)PyBytes_AS_STRING(result);
        out[0] = (unsigned char)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode);
        if (hlen == 2) {
            out[1] = (unsigned char)n;
        }
        else if (hlen == 4) {
            out[1] = 126;
            out[2] = (unsigned char)(n >> 8);
            out[3] = (unsigned char)n;
        }
        else {
            unsigned long long len = (unsigned long long)n;
            int k;
            out[1] = 127;
            for (k = 9; k >= 2; k--) {
                out[k] = (unsigned char)len;
                len >>= 8;
            }
        }
        memcpy(out + hlen, data, n);
    }
    if (is_buffer) {
        PyBuffer_Release(&view);
    }
    Py_XDECREF(encoded);
    return result;
}

/* PayloadBuffer(size): one frame's payload, unmasked into its final bytes object
 * as it arrives (no list of pieces to join). The object grows with what was
 * added, to at most four times that (never more than size): a peer announcing
 * a large frame does not get it allocated before sending a quarter of it. Until take(), the
 * bytes object is private: nothing else sees it while it changes. */
typedef struct {
    PyObject_HEAD
    PyObject *data;    /* the bytes being filled, NULL before the first add() */
    Py_ssize_t size;   /* the payload's length */
    Py_ssize_t filled; /* bytes added so far */
} PayloadBuffer;

/* Allocate at least this much at once. */
#define PAYLOAD_MIN_ALLOC 65536

static PyObject *
payload_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t size;
    PayloadBuffer *self;

    if (!PyArg_ParseTuple(args, "n:PayloadBuffer", &size)) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must be >= 0");
        return NULL;
    }
    self = (PayloadBuffer *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->data = NULL;
        self->size = size;
        self->filled = 0;
    }
    return (PyObject *)self;
}

static void
payload_dealloc(PayloadBuffer *self)
{
    Py_XDECREF(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
payload_add(PayloadBuffer *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer src, mask;
    PyObject *result = NULL;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "add() takes exactly 2 arguments");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &src, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        goto done;
    }
    if (self->size < 0) {
        PyErr_SetString(PyExc_ValueError, "the payload is gone (out of memory)");
        goto done;
    }
    if (src.len > self->size - self->filled) {
        PyErr_SetString(PyExc_ValueError, "more bytes than the payload's size");
        goto done;
    }
    if (src.len == 0) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    {
        Py_ssize_t need = self->filled + src.len;
        Py_ssize_t have = self->data == NULL ? 0 : PyBytes_GET_SIZE(self->data);
        if (need > have) {
            /* All of it once a quarter is there (one allocation for most
             * frames), else twice what is there; within [64 KiB, size]. */
            Py_ssize_t grow = need >= self->size / 4 ? self->size : 2 * need;
            if (grow < PAYLOAD_MIN_ALLOC) {
                grow = PAYLOAD_MIN_ALLOC < self->size ? PAYLOAD_MIN_ALLOC : self->size;
            }
            if (self->data == NULL) {
                self->data = PyBytes_FromStringAndSize(NULL, grow);
                if (self->data == NULL) {
                    if (self->filled) {
                        self->size = -1; /* what was added is gone with it */
                    }
                    goto done;
                }
            }
            else if (_PyBytes_Resize(&self->data, grow) < 0) {
                /* self->data is NULL now: what was added is lost, and so is the payload. */
                self->size = -1;
                self->filled = 0;
                goto done;
            }
        }
        {
            /* The mask turned to where this piece starts in the payload. */
            const unsigned char *m = (const unsigned char *)mask.buf;
            const Py_ssize_t r = self->filled & 3;
            const unsigned char turned[4] = {m[r], m[(r + 1) & 3], m[(r + 2) & 3], m[(r + 3) & 3]};
            unmask((const unsigned char *)src.buf,
                   (unsigned char *)PyBytes_AS_STRING(self->data) + self->filled, src.len, turned);
        }
        self->filled = need;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&src);
    return result;
}

static PyObject *
payload_take(PayloadBuffer *self, PyObject *unused)
{
    PyObject *data;

    if (self->size < 0) {
        PyErr_SetString(PyExc_ValueError, "the payload is gone (out of memory)");
        return NULL;
    }
    if (self->filled != self->size) {
        PyErr_SetString(PyExc_ValueError, "the payload is not complete");
        return NULL;
    }
    if (self->data == NULL) {
        if (self->size != 0) {
            PyErr_SetString(PyExc_ValueError, "the payload is gone");
            return NULL;
        }
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    if (PyBytes_GET_SIZE(self->data) != self->size && _PyBytes_Resize(&self->data, self->size) < 0) {
        return NULL;
    }
    data = self->data;
    self->data = NULL; /* handed over: this object no longer writes to it */
    self->size = self->filled = 0;
    return data;
}

static PyObject *
payload_allocated(PayloadBuffer *self, void *closure)
{
    return PyLong_FromSsize_t(self->data == NULL ? 0 : PyBytes_GET_SIZE(self->data));
}

static PyObject *
payload_filled(PayloadBuffer *self, void *closure)
{
    return PyLong_FromSsize_t(self->filled);
}

static PyMethodDef payload_methods[] = {
    {"add", (PyCFunction)(void (*)(void))payload_add, METH_FASTCALL,
     "add(masked, mask): unmask the next bytes of the payload into place."},
    {"take", (PyCFunction)payload_take, METH_NOARGS,
     "take() -> bytes: the whole payload, once every byte was added."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef payload_getset[] = {
    {"allocated", (getter)payload_allocated, NULL, "bytes allocated for the payload so far", NULL},
    {"filled", (getter)payload_filled, NULL, "bytes of the payload added so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PayloadBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsserver.protocol._speedups.PayloadBuffer",
    .tp_basicsize = sizeof(PayloadBuffer),
    .tp_dealloc = (destructor)payload_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "PayloadBuffer(size): a frame's payload, unmasked into place as it arrives.",
    .tp_methods = payload_methods,
    .tp_getset = payload_getset,
    .tp_new = payload_new,
};

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes: XOR data with the 4-byte mask repeated."},
    {"read_messages", (PyCFunction)(void (*)(void))read_messages, METH_FASTCALL,
     "read_messages(buf, pos, max_size) -> (messages, pos): the whole small messages at buf[pos:]."},
    {"read_close", (PyCFunction)(void (*)(void))read_close, METH_FASTCALL,
     "read_close(buf, pos) -> (code, reason, pos) or None: a whole, valid close frame at buf[pos:]."},
    {"build_frame", (PyCFunction)(void (*)(void))build_frame, METH_FASTCALL,
     "build_frame(opcode, payload, fin, rsv1) -> bytes: an unmasked frame."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "wsserver.protocol._speedups",
    "C accelerator for wsserver's frame layer (see frames.py for the reference).", -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module;

    if (PyType_Ready(&PayloadBufferType) < 0) {
        return NULL;
    }
    module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&PayloadBufferType);
    if (PyModule_AddObject(module, "PayloadBuffer", (PyObject *)&PayloadBufferType) < 0) {
        Py_DECREF(&PayloadBufferType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
