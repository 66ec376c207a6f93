/*
 * logsvc._speedups: optional C versions of the hottest per-record code.
 *
 * Every function here has a Python reference in logsvc that gives the same
 * result (the tests hold them to it); logsvc runs without this module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyMethodDef speedupsMethods[] = {
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedupsModule = {
    PyModuleDef_HEAD_INIT,
    "logsvc._speedups",
    "Optional C versions of logsvc's hottest per-record code.",
    -1,
    speedupsMethods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedupsModule);
}
