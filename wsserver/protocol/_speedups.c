/* Optional accelerator for wsserver: XOR masking of WebSocket payloads.
 *
 * apply_mask(data, mask) -> bytes: data XOR mask repeated, 8 bytes at a time
 * (compilers vectorise the loop further). wsserver.frames falls back to a
 * pure-Python version when this module is not built or WSSERVER_NO_SPEEDUPS
 * is set.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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
    if (result == NULL) {
        goto done;
    }
    {
        const unsigned char *in = (const unsigned char *)data.buf;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
        const unsigned char *m = (const unsigned char *)mask.buf;
        const unsigned char m8[8] = {m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]};
        uint64_t key;
        Py_ssize_t i = 0, n = data.len;

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
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes: XOR data with the 4-byte mask repeated."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "wsserver.protocol._speedups", "C accelerator for wsserver: masking.", -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
