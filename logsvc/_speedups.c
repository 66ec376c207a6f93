/*
 * logsvc._speedups: optional C versions of the hottest per-record code.
 *
 * Every function here has a Python reference in logsvc that gives the same
 * result (the tests hold them to it); logsvc runs without this module.
 *
 * The syslog functions read the message shapes nearly every sender writes
 * and answer None for anything else, including anything unusual in those
 * shapes (a character outside printable ASCII before the MSG, a date near
 * the ends of the calendar, a repeated SD parameter...): the caller then
 * goes the Python way, which settles it.  So what these accept, they must
 * read exactly as logsvc.formats.syslog does; what they refuse costs only
 * the call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
/* recvmmsg: Linux's (Python.h defines _GNU_SOURCE, which declares it). */
#ifdef __linux__
#define HAVE_RECVMMSG 1
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

/* Set by configure(): the Record type (a tuple subclass) and, by PRI, the
 * fields' JSON text up to the facility's closing quote. */
static PyTypeObject *recordType = NULL;
static PyObject *facilityJSON = NULL;
/* And for RFC 3164: the memo of year-less stamps, (month, day, hour,
 * minute, second, receive day, zone) -> microseconds. */
static PyObject *stampCache = NULL;

/* read3164's last stamp ("Mmm dd hh:mm:ss" as written), its receive day and
 * zone (held, so its address names it), and its whole second. */
static int lastStampValid = 0;
static char lastStamp[16];
static Py_ssize_t lastStampLength = 0;
static long long lastReceiveDay = 0;
static PyObject *lastZone = NULL;
static long long lastWhole = 0;

static const char *const MONTH_NAMES[12] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* The highest PRI (facility 23, severity 7). */
#define MAX_PRI 191

/* Longest fields text built here: the facility, PROCID, MSGID and four SD
 * parameters.  Longer ones go the Python way. */
#define FIELDS_MAX 2048

/* A text of one byte a character (Latin-1: every RFC 5424 message the C
 * version reads, since it leaves non-ASCII headers to Python; a MSG beyond
 * Latin-1 goes the Python way too). */
typedef struct {
    const Py_UCS1 *data;
    Py_ssize_t length;
} Text;

#define charAt(t, i) ((Py_UCS4)(t)->data[(i)])

static inline int
isDigit(Py_UCS4 c)
{
    return c >= '0' && c <= '9';
}

/* Character classes of the header's words, by byte. */
enum {
    PRINTABLE = 1,  /* [!-~]: HOSTNAME, APP-NAME */
    WORD = 2,       /* printable but quote and backslash: PROCID, MSGID */
    SD_NAME = 4,    /* printable but =, ], quote and backslash: SD-ID, PARAM-NAME */
    SD_VALUE = 8,   /* printable or space but quote and backslash: PARAM-VALUE */
    HOST = 16,      /* printable but [: an RFC 3164 HOSTNAME */
    TAG = 32,       /* printable but :, [ and ]: an RFC 3164 TAG */
    PID = 64,       /* printable but ]: the TAG's [pid] */
};

static unsigned char classes[256];

/* Each class: whether it holds the space, and the printable characters it
 * does not hold. */
static const struct {
    unsigned char kind;
    int space;
    const char *excluded;
} classRules[] = {
    {PRINTABLE, 0, ""},
    {WORD, 0, "\"\\"},
    {SD_NAME, 0, "=]\"\\"},
    {SD_VALUE, 1, "\"\\"},
    {HOST, 0, "["},
    {TAG, 0, ":[]"},
    {PID, 0, "]"},
};

static void
fillClasses(void)
{
    for (int c = 0x20; c <= 0x7e; c++) {
        for (size_t r = 0; r < sizeof(classRules) / sizeof(classRules[0]); r++) {
            if ((c != ' ' || classRules[r].space) && strchr(classRules[r].excluded, c) == NULL) {
                classes[c] |= classRules[r].kind;
            }
        }
    }
}

/* Read `count` digits at *i into *value; 0 when they are not all digits. */
static inline int
readDigits(const Text *t, Py_ssize_t *i, int count, long *value)
{
    long v = 0;
    if (*i + count > t->length) {
        return 0;
    }
    for (int n = 0; n < count; n++) {
        Py_UCS4 c = charAt(t, *i + n);
        if (!isDigit(c)) {
            return 0;
        }
        v = v * 10 + (long)(c - '0');
    }
    *i += count;
    *value = v;
    return 1;
}

/* Read a second's fraction at *i, 1 to `most` digits, as microseconds (its
 * first six digits, padded with zeros) into *micros; 0 when there is no
 * digit. */
static int
readFraction(const Text *t, Py_ssize_t *i, Py_ssize_t most, long *micros)
{
    Py_ssize_t start = *i, n = *i;
    long value = 0;
    while (n < t->length && isDigit(charAt(t, n)) && n - start < most) {
        if (n - start < 6) {
            value = value * 10 + (long)(charAt(t, n) - '0');
        }
        n++;
    }
    if (n == start) {
        return 0;
    }
    for (Py_ssize_t digits = n - start; digits < 6; digits++) {
        value *= 10;
    }
    *i = n;
    *micros = value;
    return 1;
}

/* Whether a METH_FASTCALL function got its `expected` arguments; if not,
 * a TypeError naming its `signature`. */
static int
takes(Py_ssize_t nargs, Py_ssize_t expected, const char *signature)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s takes %zd arguments (%zd given)", signature, expected, nargs);
        return 0;
    }
    return 1;
}

static inline int
expect(const Text *t, Py_ssize_t *i, Py_UCS4 c)
{
    if (*i < t->length && charAt(t, *i) == c) {
        (*i)++;
        return 1;
    }
    return 0;
}

/* Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static long long
daysFromCivil(long y, long m, long d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int
daysInMonth(long y, long m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29;
    }
    return days[m - 1];
}

/* A run of characters of class `kind`, at least one, ending at `stop` (not
 * included) or at the end.  Returns the index after the run, or -1. */
static inline Py_ssize_t
runOf(const Text *t, Py_ssize_t i, unsigned char kind, Py_UCS1 stop)
{
    Py_ssize_t start = i;
    while (i < t->length) {
        Py_UCS1 c = t->data[i];
        if (c == stop) {
            break;
        }
        if (!(classes[c] & kind)) {
            return -1;
        }
        i++;
    }
    return i > start ? i : -1;
}

/* A growing byte buffer, on the stack until it outgrows it. */
typedef struct {
    char *data;
    Py_ssize_t length, size;
    int nonASCII;
    char stack[2048];
} Text8;

static inline void
text8Init(Text8 *b)
{
    b->data = b->stack;
    b->length = 0;
    b->size = (Py_ssize_t)sizeof(b->stack);
    b->nonASCII = 0;
}

static void
text8Free(Text8 *b)
{
    if (b->data != b->stack) {
        PyMem_Free(b->data);
    }
}

/* Make room for n more bytes: on the heap, twice as large as needed
 * before. */
static int
text8Grow(Text8 *b, Py_ssize_t n)
{
    Py_ssize_t size = b->size;
    while (b->length + n > size) {
        size *= 2;
    }
    char *data = PyMem_Malloc((size_t)size);
    if (data == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    memcpy(data, b->data, (size_t)b->length);
    text8Free(b);
    b->data = data;
    b->size = size;
    return 1;
}

static inline int
text8Append(Text8 *b, const char *s, Py_ssize_t n)
{
    if (b->length + n > b->size && !text8Grow(b, n)) {
        return 0;
    }
    memcpy(b->data + b->length, s, (size_t)n);
    b->length += n;
    return 1;
}

/* Append t[start:end]. */
static inline int
text8AppendSlice(Text8 *b, const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    return text8Append(b, (const char *)t->data + start, end - start);
}

/* The str of the buffer's UTF-8 text (a new reference), or NULL with an
 * error set. */
static PyObject *
text8Str(const Text8 *b)
{
    if (b->nonASCII) {
        return PyUnicode_DecodeUTF8(b->data, b->length, NULL);
    }
    PyObject *text = PyUnicode_New(b->length, 127);
    if (text != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(text), b->data, (size_t)b->length);
    }
    return text;
}

/* A record of `type` (a tuple subclass: Record) holding the seven items,
 * stealing the references to them (released when it cannot be made: NULL,
 * with an error set). */
static PyObject *
packRecord(PyTypeObject *type, PyObject *items[7])
{
    PyObject *record = type->tp_alloc(type, 7);
    for (int n = 0; n < 7; n++) {
        if (record == NULL) {
            Py_DECREF(items[n]);
        }
        else {
            PyTuple_SET_ITEM(record, n, items[n]);
        }
    }
    return record;
}

static PyObject *
newRecord(long long ts, PyObject *received, int severity, PyObject *source, PyObject *service,
          PyObject *message, PyObject *fields)
{
    /* Steals the references to source, service, message and fields. */
    PyObject *tsObject = PyLong_FromLongLong(ts);
    PyObject *level = PyLong_FromLong(severity);
    if (tsObject == NULL || level == NULL) {
        Py_XDECREF(tsObject);
        Py_XDECREF(level);
        Py_DECREF(source);
        Py_DECREF(service);
        Py_DECREF(message);
        Py_DECREF(fields);
        return NULL;
    }
    PyObject *items[7] = {tsObject, Py_NewRef(received), level, source, service, message, fields};
    return packRecord(recordType, items);
}

/* A syslog record: its MSG is text[messageStart:messageEnd], its fields'
 * JSON text in `fields` (which it frees), or None when that is longer than
 * FIELDS_MAX (the Python way writes it).  Steals the references to source
 * and service, either of which may be NULL (an error is set). */
static PyObject *
syslogRecord(long long ts, PyObject *received, long pri, PyObject *source, PyObject *service,
             PyObject *text, Py_ssize_t messageStart, Py_ssize_t messageEnd, Text8 *fields)
{
    if (fields->length > FIELDS_MAX) {
        text8Free(fields);
        Py_XDECREF(source);
        Py_XDECREF(service);
        Py_RETURN_NONE;
    }
    PyObject *message = PyUnicode_Substring(text, messageStart, messageEnd);
    PyObject *fieldsObject = text8Str(fields);
    text8Free(fields);
    if (source == NULL || service == NULL || message == NULL || fieldsObject == NULL) {
        Py_XDECREF(source);
        Py_XDECREF(service);
        Py_XDECREF(message);
        Py_XDECREF(fieldsObject);
        return NULL;
    }
    return newRecord(ts, received, (int)(pri & 7), source, service, message, fieldsObject);
}

/* Start `fields` with the facility's JSON text ({"facility":"NAME") of PRI;
 * 0 with an error set when it cannot. */
static int
startFields(Text8 *fields, long pri)
{
    Py_ssize_t length;
    const char *text = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(facilityJSON, pri), &length);
    text8Init(fields);
    return text != NULL && text8Append(fields, text, length);
}

typedef struct {
    Py_ssize_t nameStart, nameEnd, valueStart, valueEnd;
} Param;

/* RFC 5424 after its "<PRI>1 " (i is the index after it). */
static PyObject *
read5424(PyObject *textObject, const Text *tp, Py_ssize_t i, long pri, PyObject *peer, PyObject *received)
{
    Text t = *tp;

    /* TIMESTAMP: NILVALUE or YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM). */
    long long ts = 0;
    int nilStamp = 0;
    if (expect(&t, &i, '-')) {
        nilStamp = 1;
    }
    else {
        long year, month, day, hour, minute, second;
        if (!readDigits(&t, &i, 4, &year) || !expect(&t, &i, '-') || !readDigits(&t, &i, 2, &month)
            || !expect(&t, &i, '-') || !readDigits(&t, &i, 2, &day) || !expect(&t, &i, 'T')
            || !readDigits(&t, &i, 2, &hour) || !expect(&t, &i, ':') || !readDigits(&t, &i, 2, &minute)
            || !expect(&t, &i, ':') || !readDigits(&t, &i, 2, &second)) {
            Py_RETURN_NONE;
        }
        long fraction = 0;
        if (expect(&t, &i, '.') && !readFraction(&t, &i, 9, &fraction)) {
            Py_RETURN_NONE;
        }
        long offset = 0;
        if (expect(&t, &i, 'Z')) {
            offset = 0;
        }
        else {
            Py_UCS4 sign = i < t.length ? charAt(&t, i) : 0;
            long offsetHours, offsetMinutes;
            if (sign != '+' && sign != '-') {
                Py_RETURN_NONE;
            }
            i++;
            if (!readDigits(&t, &i, 2, &offsetHours) || !expect(&t, &i, ':')
                || !readDigits(&t, &i, 2, &offsetMinutes)) {
                Py_RETURN_NONE;
            }
            if (offsetHours > 23 || offsetMinutes > 59) {
                /* datetime reads +01:75 as +02:15: the Python way. */
                Py_RETURN_NONE;
            }
            offset = (offsetHours * 60 + offsetMinutes) * 60;
            if (sign == '-') {
                offset = -offset;
            }
        }
        /* Years far from both ends of datetime's calendar only. */
        if (year < 1000 || year > 9000 || month < 1 || month > 12 || day < 1
            || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
            Py_RETURN_NONE;
        }
        long long seconds = daysFromCivil(year, month, day) * 86400LL + hour * 3600LL + minute * 60LL
            + second - offset;
        ts = seconds * 1000000LL + fraction;
    }
    if (!expect(&t, &i, ' ')) {
        Py_RETURN_NONE;
    }

    /* HOSTNAME, APP-NAME (printable ASCII), PROCID, MSGID (no quote or
     * backslash: written into the fields' JSON as they are), each ended by
     * a space. */
    static const unsigned char wordClasses[4] = {PRINTABLE, PRINTABLE, WORD, WORD};
    Py_ssize_t starts[4], ends[4];
    for (int w = 0; w < 4; w++) {
        starts[w] = i;
        ends[w] = runOf(&t, i, wordClasses[w], ' ');
        if (ends[w] < 0) {
            Py_RETURN_NONE;
        }
        i = ends[w];
        if (!expect(&t, &i, ' ')) {
            Py_RETURN_NONE;
        }
    }
    Py_ssize_t hostStart = starts[0], hostEnd = ends[0], appStart = starts[1], appEnd = ends[1];
    Py_ssize_t procStart = starts[2], procEnd = ends[2], msgidStart = starts[3], msgidEnd = ends[3];

    /* STRUCTURED-DATA: NILVALUE or one element of one to four parameters. */
    Param params[4];
    int paramCount = 0;
    Py_ssize_t sdStart = 0, sdEnd = 0;
    if (!expect(&t, &i, '-')) {
        if (!expect(&t, &i, '[')) {
            Py_RETURN_NONE;
        }
        sdStart = i;
        sdEnd = runOf(&t, i, SD_NAME, ' ');
        if (sdEnd < 0) {
            Py_RETURN_NONE;
        }
        i = sdEnd;
        for (;;) {
            if (expect(&t, &i, ']')) {
                break;
            }
            if (paramCount == 4 || !expect(&t, &i, ' ')) {
                Py_RETURN_NONE;
            }
            Param *p = &params[paramCount++];
            p->nameStart = i;
            p->nameEnd = runOf(&t, i, SD_NAME, '=');
            if (p->nameEnd < 0) {
                Py_RETURN_NONE;
            }
            i = p->nameEnd;
            if (!expect(&t, &i, '=') || !expect(&t, &i, '"')) {
                Py_RETURN_NONE;
            }
            p->valueStart = i;
            while (i < t.length) {
                Py_UCS4 c = charAt(&t, i);
                if (c == '"') {
                    break;
                }
                if (!(classes[c] & SD_VALUE)) {
                    Py_RETURN_NONE;
                }
                i++;
            }
            p->valueEnd = i;
            if (!expect(&t, &i, '"')) {
                Py_RETURN_NONE;
            }
        }
        if (paramCount == 0) {
            Py_RETURN_NONE;
        }
        /* A repeated parameter is a list: the Python way writes it. */
        for (int a = 0; a < paramCount; a++) {
            for (int b = a + 1; b < paramCount; b++) {
                Py_ssize_t n = params[a].nameEnd - params[a].nameStart;
                if (n != params[b].nameEnd - params[b].nameStart) {
                    continue;
                }
                Py_ssize_t k = 0;
                while (k < n && charAt(&t, params[a].nameStart + k) == charAt(&t, params[b].nameStart + k)) {
                    k++;
                }
                if (k == n) {
                    Py_RETURN_NONE;
                }
            }
        }
    }

    /* The end, or SP, an optional BOM and the MSG. */
    Py_ssize_t messageStart = t.length;
    if (i < t.length) {
        if (!expect(&t, &i, ' ')) {
            Py_RETURN_NONE;
        }
        /* A BOM (U+FEFF) is beyond Latin-1: such a text was left to Python. */
        messageStart = i;
    }
    Py_ssize_t messageEnd = t.length;
    while (messageEnd > messageStart) {
        Py_UCS4 c = charAt(&t, messageEnd - 1);
        if (c != '\r' && c != '\n' && c != 0) {
            break;
        }
        messageEnd--;
    }

    /* The fields' JSON text. */
    Text8 fields;
    if (!startFields(&fields, pri)) {
        text8Free(&fields);
        return NULL;
    }
    int ok = 1;
    int nilProc = procEnd - procStart == 1 && charAt(&t, procStart) == '-';
    int nilMsgid = msgidEnd - msgidStart == 1 && charAt(&t, msgidStart) == '-';
    if (!nilProc) {
        ok = ok && text8Append(&fields, ",\"procid\":\"", 11) && text8AppendSlice(&fields, &t, procStart, procEnd)
            && text8Append(&fields, "\"", 1);
    }
    if (!nilMsgid) {
        ok = ok && text8Append(&fields, ",\"msgid\":\"", 10) && text8AppendSlice(&fields, &t, msgidStart, msgidEnd)
            && text8Append(&fields, "\"", 1);
    }
    for (int n = 0; n < paramCount; n++) {
        ok = ok && text8Append(&fields, ",\"", 2) && text8AppendSlice(&fields, &t, sdStart, sdEnd) && text8Append(&fields, ".", 1)
            && text8AppendSlice(&fields, &t, params[n].nameStart, params[n].nameEnd) && text8Append(&fields, "\":\"", 3)
            && text8AppendSlice(&fields, &t, params[n].valueStart, params[n].valueEnd) && text8Append(&fields, "\"", 1);
    }
    ok = ok && text8Append(&fields, "}", 1);
    if (!ok) {
        text8Free(&fields);
        return NULL;
    }

    if (nilStamp) {
        ts = PyLong_AsLongLong(received);
        if (ts == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            text8Free(&fields);
            Py_RETURN_NONE;
        }
    }
    PyObject *source, *service;
    if (hostEnd - hostStart == 1 && charAt(&t, hostStart) == '-') {
        Py_INCREF(peer);
        source = peer;
    }
    else {
        source = PyUnicode_Substring(textObject, hostStart, hostEnd);
    }
    if (appEnd - appStart == 1 && charAt(&t, appStart) == '-') {
        service = PyUnicode_New(0, 0);
    }
    else {
        service = PyUnicode_Substring(textObject, appStart, appEnd);
    }
    return syslogRecord(ts, received, pri, source, service, textObject, messageStart, messageEnd, &fields);
}

/* The whole second (microseconds) of an RFC 3164 stamp: "Mmm" at
 * stampStart, the day at [dayStart, dayEnd), "hh:mm:ss" at timeStart, from
 * the memo of logsvc.formats.syslog (_stampCache), keyed as it keys it.
 * The last stamp read is kept here: senders write many messages a second,
 * and a message of the same second, receive day and zone needs no key built
 * nor memo looked up.  1 with *whole set; 0 when the memo refuses the stamp
 * (the Python way says why); -1 on error. */
static int
stampWhole(PyObject *textObject, const Text *t, Py_ssize_t stampStart, long month, Py_ssize_t dayStart,
           Py_ssize_t dayEnd, Py_ssize_t timeStart, long long receiveDay, PyObject *zone, long long *whole)
{
    Py_ssize_t stampLength = timeStart + 8 - stampStart;
    if (lastStampValid && stampLength == lastStampLength && receiveDay == lastReceiveDay && zone == lastZone
        && memcmp(t->data + stampStart, lastStamp, (size_t)stampLength) == 0) {
        *whole = lastWhole;
        return 1;
    }
    PyObject *key = Py_BuildValue(
        "(lNNNNLO)", month, PyUnicode_Substring(textObject, dayStart, dayEnd),
        PyUnicode_Substring(textObject, timeStart, timeStart + 2),
        PyUnicode_Substring(textObject, timeStart + 3, timeStart + 5),
        PyUnicode_Substring(textObject, timeStart + 6, timeStart + 8), receiveDay, zone);
    if (key == NULL) {
        return -1;
    }
    PyObject *found = PyObject_GetItem(stampCache, key);
    Py_DECREF(key);
    if (found == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    long long micros = PyLong_AsLongLong(found);
    Py_DECREF(found);
    if (micros == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    lastStampValid = stampLength <= (Py_ssize_t)sizeof(lastStamp);
    if (lastStampValid) {
        memcpy(lastStamp, t->data + stampStart, (size_t)stampLength);
        lastStampLength = stampLength;
        lastReceiveDay = receiveDay;
        Py_XSETREF(lastZone, Py_NewRef(zone));
        lastWhole = micros;
    }
    *whole = micros;
    return 1;
}

/* RFC 3164 after its "<PRI>" (i is the index after it): "Mmm dd
 * hh:mm:ss[.ffffff] HOSTNAME TAG[[pid]]: MSG", the shape rsyslog, syslog-ng
 * and logger write. */
static PyObject *
read3164(PyObject *textObject, const Text *tp, Py_ssize_t i, long pri, PyObject *peer, PyObject *received,
         PyObject *zone)
{
    Text t = *tp;
    long month = 0;
    Py_ssize_t stampStart = i;
    if (i + 3 > t.length) {
        Py_RETURN_NONE;
    }
    for (int n = 0; n < 12; n++) {
        if (memcmp(t.data + i, MONTH_NAMES[n], 3) == 0) {
            month = n + 1;
            break;
        }
    }
    if (month == 0) {
        Py_RETURN_NONE;
    }
    i += 3;
    if (!expect(&t, &i, ' ')) {
        Py_RETURN_NONE;
    }
    expect(&t, &i, ' ');
    /* The stamp's words, as the Python memo's key holds them. */
    Py_ssize_t dayStart = i;
    if (!(i < t.length && isDigit(charAt(&t, i)))) {
        Py_RETURN_NONE;
    }
    i++;
    if (i < t.length && isDigit(charAt(&t, i))) {
        i++;
    }
    Py_ssize_t dayEnd = i;
    long hour, minute, second;
    if (!expect(&t, &i, ' ') || !readDigits(&t, &i, 2, &hour) || !expect(&t, &i, ':')
        || !readDigits(&t, &i, 2, &minute) || !expect(&t, &i, ':') || !readDigits(&t, &i, 2, &second)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t timeStart = dayEnd + 1;
    long fraction = 0;
    if (expect(&t, &i, '.') && !readFraction(&t, &i, 6, &fraction)) {
        Py_RETURN_NONE;
    }
    if (!expect(&t, &i, ' ')) {
        Py_RETURN_NONE;
    }
    /* HOSTNAME: no [, not ending in a colon. */
    Py_ssize_t hostStart = i, hostEnd = runOf(&t, i, HOST, ' ');
    if (hostEnd < 0 || charAt(&t, hostEnd - 1) == ':') {
        Py_RETURN_NONE;
    }
    i = hostEnd;
    if (!expect(&t, &i, ' ')) {
        Py_RETURN_NONE;
    }
    /* TAG, [pid], a colon, an optional space. */
    Py_ssize_t tagStart = i, tagEnd = i;
    while (tagEnd < t.length && (classes[t.data[tagEnd]] & TAG)) {
        tagEnd++;
    }
    if (tagEnd == tagStart || tagEnd - tagStart > 128 || tagEnd == t.length) {
        Py_RETURN_NONE;
    }
    i = tagEnd;
    Py_ssize_t pidStart = 0, pidEnd = 0;
    if (expect(&t, &i, '[')) {
        pidStart = pidEnd = i;
        while (pidEnd < t.length && (classes[t.data[pidEnd]] & PID)) {
            pidEnd++;
        }
        if (pidEnd - pidStart > 128) {
            Py_RETURN_NONE;
        }
        i = pidEnd;
        if (!expect(&t, &i, ']')) {
            Py_RETURN_NONE;
        }
        for (Py_ssize_t n = pidStart; n < pidEnd; n++) {
            if (!isDigit(charAt(&t, n))) {
                /* Written into JSON with escapes: the Python way. */
                Py_RETURN_NONE;
            }
        }
    }
    if (!expect(&t, &i, ':')) {
        Py_RETURN_NONE;
    }
    expect(&t, &i, ' ');
    Py_ssize_t messageStart = i, messageEnd = t.length;
    while (messageEnd > messageStart) {
        Py_UCS4 c = charAt(&t, messageEnd - 1);
        if (c != '\r' && c != '\n' && c != 0) {
            break;
        }
        messageEnd--;
    }

    /* The whole second, from the memo (by receive day: floor division). */
    long long receivedMicros = PyLong_AsLongLong(received);
    if (receivedMicros == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    long long receiveDay = receivedMicros / 86400000000LL;
    if (receivedMicros % 86400000000LL < 0) {
        receiveDay--;
    }
    long long ts;
    int found = stampWhole(textObject, &t, stampStart, month, dayStart, dayEnd, timeStart, receiveDay, zone, &ts);
    if (found <= 0) {
        if (found == 0) {
            Py_RETURN_NONE;
        }
        return NULL;
    }
    ts += fraction;

    Text8 fields;
    if (!startFields(&fields, pri)
        || (pidEnd > pidStart
            && !(text8Append(&fields, ",\"procid\":\"", 11) && text8AppendSlice(&fields, &t, pidStart, pidEnd)
                 && text8Append(&fields, "\"", 1)))
        || !text8Append(&fields, "}", 1)) {
        text8Free(&fields);
        return NULL;
    }
    PyObject *source = PyUnicode_Substring(textObject, hostStart, hostEnd);
    PyObject *service = PyUnicode_Substring(textObject, tagStart, tagEnd);
    return syslogRecord(ts, received, pri, source, service, textObject, messageStart, messageEnd, &fields);
}

static PyObject *
commonSyslog(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!takes(nargs, 4, "commonSyslog(text, peer, received, zone)")) {
        return NULL;
    }
    PyObject *textObject = args[0], *peer = args[1], *received = args[2], *zone = args[3];
    if (recordType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "logsvc._speedups.configure() was not called");
        return NULL;
    }
    if (!PyUnicode_Check(textObject) || !PyUnicode_Check(peer) || !PyLong_CheckExact(received)) {
        PyErr_SetString(PyExc_TypeError, "commonSyslog(text: str, peer: str, received: int, zone)");
        return NULL;
    }
    if (PyUnicode_KIND(textObject) != PyUnicode_1BYTE_KIND) {
        Py_RETURN_NONE;
    }
    Text t = {PyUnicode_1BYTE_DATA(textObject), PyUnicode_GET_LENGTH(textObject)};
    Py_ssize_t i = 0;

    /* <PRI>, written without leading zeros. */
    if (!expect(&t, &i, '<')) {
        Py_RETURN_NONE;
    }
    long pri = 0;
    Py_ssize_t priStart = i;
    while (i < t.length && isDigit(charAt(&t, i)) && i - priStart < 3) {
        pri = pri * 10 + (long)(charAt(&t, i) - '0');
        i++;
    }
    if (i == priStart || (i - priStart > 1 && charAt(&t, priStart) == '0') || pri > MAX_PRI
        || !expect(&t, &i, '>')) {
        Py_RETURN_NONE;
    }
    if (i + 1 < t.length && charAt(&t, i) == '1' && charAt(&t, i + 1) == ' ') {
        return read5424(textObject, &t, i + 2, pri, peer, received);
    }
    return read3164(textObject, &t, i, pri, peer, received, zone);
}

#ifdef HAVE_RECVMMSG
/* Datagrams one recvmmsg call takes at most. */
#define RECEIVE_BATCH 64

/* Where recvmmsg writes: RECEIVE_BATCH buffers of the largest datagram
 * asked for, allocated at the first read (the kernel touches only the pages
 * a datagram fills). */
static char *receiveBuffers = NULL;
static Py_ssize_t receiveBufferSize = 0;

/* The last sender's address and its host as text: most datagrams come from
 * a few senders. */
static struct sockaddr_storage lastSender;
static socklen_t lastSenderLength = 0;
static PyObject *lastHost = NULL;

/* The sender's host as CPython's recvfrom writes it (addr[0]: getnameinfo's
 * numeric host), or NULL with an error set. */
static PyObject *
senderHost(const struct sockaddr_storage *sender, socklen_t length)
{
    if (lastHost != NULL && length == lastSenderLength && memcmp(sender, &lastSender, length) == 0) {
        Py_INCREF(lastHost);
        return lastHost;
    }
    char host[NI_MAXHOST];
    int error = getnameinfo((const struct sockaddr *)sender, length, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
    PyObject *text = error == 0 ? PyUnicode_FromString(host) : PyUnicode_FromString("unknown");
    if (text == NULL) {
        return NULL;
    }
    memcpy(&lastSender, sender, length);
    lastSenderLength = length;
    Py_XSETREF(lastHost, Py_NewRef(text));
    return text;
}

static PyObject *
receiveDatagrams(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!takes(nargs, 3, "receiveDatagrams(fd, maxBytes, maxSize)")) {
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    Py_ssize_t maxBytes = PyLong_AsSsize_t(args[1]);
    Py_ssize_t maxSize = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (fd < INT_MIN || fd > INT_MAX) {
        /* Any int goes to recvmmsg, which answers -1 with EBADF as recvfrom
         * would; this does not fit one. */
        PyErr_SetString(PyExc_OverflowError, "receiveDatagrams: fd does not fit a C int");
        return NULL;
    }
    if (maxSize < 1 || maxSize > 1 << 20) {
        PyErr_SetString(PyExc_ValueError, "receiveDatagrams: maxSize must be 1 to 1 MiB");
        return NULL;
    }
    if (receiveBuffers == NULL || receiveBufferSize < maxSize) {
        char *buffers = PyMem_RawRealloc(receiveBuffers, (size_t)maxSize * RECEIVE_BATCH);
        if (buffers == NULL) {
            return PyErr_NoMemory();
        }
        receiveBuffers = buffers;
        receiveBufferSize = maxSize;
    }
    PyObject *datagrams = PyList_New(0);
    if (datagrams == NULL) {
        return NULL;
    }
    struct mmsghdr headers[RECEIVE_BATCH];
    struct iovec vectors[RECEIVE_BATCH];
    struct sockaddr_storage senders[RECEIVE_BATCH];
    Py_ssize_t read = 0;
    /* Each call asks for about as many datagrams as the rest of maxBytes
     * holds at the size of the last ones (the largest, at first), so a read
     * stops near maxBytes as one datagram a call would. */
    Py_ssize_t size = maxSize;
    int ended = 0;
    while (read < maxBytes) {
        Py_ssize_t wanted = (maxBytes - read + size - 1) / size;
        int asked = wanted < RECEIVE_BATCH ? (int)wanted : RECEIVE_BATCH;
        for (int n = 0; n < asked; n++) {
            vectors[n].iov_base = receiveBuffers + (size_t)n * (size_t)maxSize;
            vectors[n].iov_len = (size_t)maxSize;
            memset(&headers[n].msg_hdr, 0, sizeof(headers[n].msg_hdr));
            headers[n].msg_hdr.msg_iov = &vectors[n];
            headers[n].msg_hdr.msg_iovlen = 1;
            headers[n].msg_hdr.msg_name = &senders[n];
            headers[n].msg_hdr.msg_namelen = sizeof(senders[n]);
        }
        int count = recvmmsg((int)fd, headers, (unsigned int)asked, MSG_DONTWAIT, NULL);
        if (count < 0) {
            ended = errno;
            break;
        }
        Py_ssize_t batchBytes = 0;
        for (int n = 0; n < count; n++) {
            PyObject *data = PyBytes_FromStringAndSize(vectors[n].iov_base, (Py_ssize_t)headers[n].msg_len);
            PyObject *host = data == NULL ? NULL : senderHost(&senders[n], headers[n].msg_hdr.msg_namelen);
            PyObject *pair = host == NULL ? NULL : PyTuple_Pack(2, data, host);
            Py_XDECREF(data);
            Py_XDECREF(host);
            if (pair == NULL || PyList_Append(datagrams, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(datagrams);
                return NULL;
            }
            Py_DECREF(pair);
            read += (Py_ssize_t)headers[n].msg_len;
            batchBytes += (Py_ssize_t)headers[n].msg_len;
        }
        if (count > 0) {
            size = batchBytes / count > 0 ? batchBytes / count : 1;
        }
        if (count == 0) {
            ended = EAGAIN;
            break;
        }
    }
    return Py_BuildValue("(Nni)", datagrams, read, ended);
}
#endif

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *type, *facilities, *months, *stamps;
    if (!PyArg_ParseTuple(args, "O!O!O!O", &PyType_Type, &type, &PyTuple_Type, &facilities, &PyDict_Type,
                          &months, &stamps)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type) || PyTuple_GET_SIZE(facilities) != MAX_PRI + 1) {
        PyErr_SetString(PyExc_ValueError, "configure(): a tuple type and 192 texts");
        return NULL;
    }
    if (PyDict_GET_SIZE(months) != 12) {
        PyErr_SetString(PyExc_ValueError, "configure(): the months are not Jan..Dec");
        return NULL;
    }
    for (int n = 0; n < 12; n++) {
        PyObject *number = PyDict_GetItemString(months, MONTH_NAMES[n]);
        if (number == NULL || !PyLong_Check(number) || PyLong_AsLong(number) != n + 1) {
            PyErr_SetString(PyExc_ValueError, "configure(): the months are not Jan..Dec");
            return NULL;
        }
    }
    for (Py_ssize_t n = 0; n <= MAX_PRI; n++) {
        PyObject *item = PyTuple_GET_ITEM(facilities, n);
        if (!PyUnicode_Check(item) || !PyUnicode_IS_ASCII(item)) {
            PyErr_SetString(PyExc_ValueError, "configure(): the facilities' JSON must be ASCII text");
            return NULL;
        }
    }
    Py_XSETREF(recordType, (PyTypeObject *)Py_NewRef(type));
    Py_XSETREF(facilityJSON, Py_NewRef(facilities));
    Py_XSETREF(stampCache, Py_NewRef(stamps));
    lastStampValid = 0;
    Py_RETURN_NONE;
}

/* ---- OTLP: the log records of decoded export requests ----
 *
 * mapRequest() is logsvc.formats.otlp.requestRecords for the records of
 * the common shape: attributes whose values are non-empty strings or
 * non-zero integers under keys of their own (none of the scope's fields, no
 * repeat), a severity number of 1..24 (or none and no text), a string body
 * (or none).  It reads them through the bindings' own attribute access, as
 * the Python loop does, and writes the fields' JSON text as orjson writes
 * it (the scope's fields text, then each key and value; a string needing an
 * escape goes the Python way).  Any other record is handed to the Python
 * loop, alone, which settles it: so each record is the one the Python loop
 * makes. */

static PyTypeObject *otlpRecordType = NULL;
/* The level of each severity number 0..24 (None for 0). */
static PyObject *otlpLevels = NULL;
static int otlpEventNames = 0;
/* _mapLogRecords(scopes, received, append, refuse): the Python way. */
static PyObject *otlpPythonMap = NULL;
/* The templates remembered by (resource bytes, scope name), a dict whose
 * __missing__ makes them; resources up to otlpMemoBytes bytes are; a
 * larger one's template is otlpTemplateOf(resource, scope name). */
static PyObject *otlpTemplates = NULL;
static Py_ssize_t otlpMemoBytes = 0;
static PyObject *otlpTemplateOf = NULL;

static PyObject *nameAttributes, *nameKey, *nameValue, *nameStringValue, *nameIntValue, *nameTraceID,
    *nameSpanID, *nameEventName, *nameSeverityNumber, *nameSeverityText, *nameBody, *nameTimeUnixNano,
    *nameObservedTimeUnixNano, *nameService, *nameFields, *nameFieldsText, *nameWhichOneof, *nameOneofValue,
    *nameAppend, *textTraceID, *textSpanID, *textEventName, *nameResourceLogs, *nameResource,
    *nameSerializeToString, *nameScopeLogs, *nameScope, *nameName, *nameHost, *nameLogRecords;

/* Attributes a record may have and still take the C way. */
#define OTLP_MAX_ATTRIBUTES 16
#define INFO_LEVEL 6

/* Append a str as a JSON string.  1 done, 0 when it needs an escape (or is
 * no str: the Python way decides), -1 on error. */
static int
text8AppendString(Text8 *b, PyObject *s)
{
    if (!PyUnicode_Check(s)) {
        return 0;
    }
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(s, &n);
    if (utf8 == NULL) {
        /* Surrogates: orjson refuses them, the Python way says so. */
        PyErr_Clear();
        return 0;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)utf8[k];
        if (c < 0x20 || c == '"' || c == '\\') {
            return 0;
        }
    }
    if (!PyUnicode_IS_ASCII(s)) {
        b->nonASCII = 1;
    }
    return text8Append(b, "\"", 1) && text8Append(b, utf8, n) && text8Append(b, "\"", 1) ? 1 : -1;
}

/* Append an integer in decimal, as orjson writes it. */
static int
text8AppendInteger(Text8 *b, long long integer)
{
    char digits[24];
    int start = (int)sizeof(digits);
    /* Through the unsigned magnitude: -2**63 has no positive long long. */
    unsigned long long magnitude = integer < 0 ? 0ULL - (unsigned long long)integer : (unsigned long long)integer;
    do {
        digits[--start] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (integer < 0) {
        digits[--start] = '-';
    }
    return text8Append(b, digits + start, (Py_ssize_t)sizeof(digits) - start);
}

static int
text8AppendHex(Text8 *b, PyObject *bytes)
{
    static const char digits[] = "0123456789abcdef";
    char pair[2];
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(bytes);
    Py_ssize_t n = PyBytes_GET_SIZE(bytes);
    if (!text8Append(b, "\"", 1)) {
        return 0;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        pair[0] = digits[data[k] >> 4];
        pair[1] = digits[data[k] & 15];
        if (!text8Append(b, pair, 2)) {
            return 0;
        }
    }
    return text8Append(b, "\"", 1);
}

/* Whether `key` is among keys[0..count) (1), not (0), or an error (-1). */
static int
amongKeys(PyObject *key, PyObject *const *keys, int count)
{
    for (int k = 0; k < count; k++) {
        int same = PyObject_RichCompareBool(key, keys[k], Py_EQ);
        if (same != 0) {
            return same;
        }
    }
    return 0;
}

/* Whether a record's own key is free to be appended: not among the scope's
 * fields nor the record's keys before it (1), taken (0), error (-1). */
static int
freeKey(PyObject *key, PyObject *baseFields, PyObject *const *keys, int count)
{
    int taken = PyDict_Contains(baseFields, key);
    if (taken == 0) {
        taken = amongKeys(key, keys, count);
    }
    return taken < 0 ? -1 : !taken;
}

/* The record of one log record in the common shape (a new reference),
 * Py_None (a new reference) for the Python way, or NULL on error. */
static PyObject *
otlpRecord(PyObject *log, PyObject *received, PyObject *source, PyObject *service, PyObject *baseFields,
           const char *baseText, Py_ssize_t baseLength, PyObject *baseTextObject)
{
    PyObject *result = NULL;
    PyObject *attributes = NULL, *traceID = NULL, *spanID = NULL, *eventName = NULL, *number = NULL;
    PyObject *severityText = NULL, *body = NULL, *message = NULL, *nanos = NULL, *fieldsText = NULL;
    PyObject *keys[OTLP_MAX_ATTRIBUTES + 3];
    PyObject *values[OTLP_MAX_ATTRIBUTES];
    int keyCount = 0, valueCount = 0, slow = 0;
    Text8 fields;
    text8Init(&fields);

#define SLOW_IF(condition) \
    if (condition) { \
        slow = 1; \
        goto done; \
    }
#define FAIL_IF(condition) \
    if (condition) { \
        goto done; \
    }

    attributes = PyObject_GetAttr(log, nameAttributes);
    FAIL_IF(attributes == NULL);
    Py_ssize_t count = PyObject_Length(attributes);
    FAIL_IF(count < 0);
    SLOW_IF(count > OTLP_MAX_ATTRIBUTES);
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *kv = PySequence_GetItem(attributes, n);
        FAIL_IF(kv == NULL);
        PyObject *key = PyObject_GetAttr(kv, nameKey);
        PyObject *value = key == NULL ? NULL : PyObject_GetAttr(kv, nameValue);
        Py_DECREF(kv);
        if (value == NULL) {
            Py_XDECREF(key);
            goto done;
        }
        keys[keyCount++] = key;
        /* A non-empty string, else a non-zero integer: what the Python
         * loop reads without asking the value's kind. */
        PyObject *item = PyObject_GetAttr(value, nameStringValue);
        if (item != NULL && PyUnicode_Check(item) && PyUnicode_GET_LENGTH(item) == 0) {
            Py_DECREF(item);
            item = PyObject_GetAttr(value, nameIntValue);
            if (item != NULL && !(PyLong_CheckExact(item) && PyObject_IsTrue(item))) {
                /* Empty, zero, or another kind: anyValue() decides. */
                Py_DECREF(item);
                Py_DECREF(value);
                slow = 1;
                goto done;
            }
        }
        Py_DECREF(value);
        FAIL_IF(item == NULL);
        values[valueCount++] = item;
        int free = freeKey(key, baseFields, keys, keyCount - 1);
        FAIL_IF(free < 0);
        SLOW_IF(!free);
    }
    traceID = PyObject_GetAttr(log, nameTraceID);
    FAIL_IF(traceID == NULL);
    SLOW_IF(!PyBytes_Check(traceID));
    spanID = PyObject_GetAttr(log, nameSpanID);
    FAIL_IF(spanID == NULL);
    SLOW_IF(!PyBytes_Check(spanID));
    if (otlpEventNames) {
        eventName = PyObject_GetAttr(log, nameEventName);
        FAIL_IF(eventName == NULL);
        SLOW_IF(!PyUnicode_Check(eventName));
    }
    /* The ids and event name take keys of their own too. */
    int idCount = keyCount;
    PyObject *extraNames[3] = {textTraceID, textSpanID, textEventName};
    int extraSet[3] = {PyBytes_GET_SIZE(traceID) > 0, PyBytes_GET_SIZE(spanID) > 0,
                       eventName != NULL && PyUnicode_GET_LENGTH(eventName) > 0};
    for (int e = 0; e < 3; e++) {
        if (extraSet[e]) {
            int free = freeKey(extraNames[e], baseFields, keys, idCount);
            FAIL_IF(free < 0);
            SLOW_IF(!free);
        }
    }

    /* The level. */
    number = PyObject_GetAttr(log, nameSeverityNumber);
    FAIL_IF(number == NULL);
    SLOW_IF(!PyLong_CheckExact(number));
    long severity = PyLong_AsLong(number);
    if (severity == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        slow = 1;
        goto done;
    }
    PyObject *level;
    if (severity >= 1 && severity <= 24) {
        level = PyTuple_GET_ITEM(otlpLevels, severity);
    }
    else {
        /* No number and no text is info; anything else, severityLevel(). */
        SLOW_IF(severity != 0);
        severityText = PyObject_GetAttr(log, nameSeverityText);
        FAIL_IF(severityText == NULL);
        SLOW_IF(!PyUnicode_Check(severityText) || PyUnicode_GET_LENGTH(severityText) != 0);
        level = NULL;
    }

    /* The message: a string body, or none. */
    body = PyObject_GetAttr(log, nameBody);
    FAIL_IF(body == NULL);
    message = PyObject_GetAttr(body, nameStringValue);
    FAIL_IF(message == NULL);
    SLOW_IF(!PyUnicode_Check(message));
    if (PyUnicode_GET_LENGTH(message) == 0) {
        PyObject *kind = PyObject_CallMethodOneArg(body, nameWhichOneof, nameOneofValue);
        FAIL_IF(kind == NULL);
        int stringOrNone = kind == Py_None || PyObject_RichCompareBool(kind, nameStringValue, Py_EQ) == 1;
        Py_DECREF(kind);
        FAIL_IF(PyErr_Occurred());
        SLOW_IF(!stringOrNone);
    }

    /* The time: the event's, else the observed one, else the receive time. */
    nanos = PyObject_GetAttr(log, nameTimeUnixNano);
    FAIL_IF(nanos == NULL);
    unsigned long long when = PyLong_AsUnsignedLongLong(nanos);
    if (when == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        slow = 1;
        goto done;
    }
    if (when == 0) {
        Py_DECREF(nanos);
        nanos = PyObject_GetAttr(log, nameObservedTimeUnixNano);
        FAIL_IF(nanos == NULL);
        when = PyLong_AsUnsignedLongLong(nanos);
        if (when == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            slow = 1;
            goto done;
        }
    }

    /* The fields' text: the scope's, or more. */
    if (keyCount == 0 && !extraSet[0] && !extraSet[1] && !extraSet[2]) {
        fieldsText = baseTextObject;
        Py_INCREF(fieldsText);
    }
    else {
        int first = baseText == NULL;
        if (first) {
            FAIL_IF(!text8Append(&fields, "{", 1));
        }
        else {
            /* The scope's fields without their closing brace. */
            FAIL_IF(!text8Append(&fields, baseText, baseLength - 1));
            fields.nonASCII = !PyUnicode_IS_ASCII(baseTextObject);
        }
        for (int n = 0; n < keyCount; n++) {
            FAIL_IF(!first && !text8Append(&fields, ",", 1));
            first = 0;
            int written = text8AppendString(&fields, keys[n]);
            FAIL_IF(written < 0);
            SLOW_IF(written == 0);
            FAIL_IF(!text8Append(&fields, ":", 1));
            if (PyUnicode_Check(values[n])) {
                written = text8AppendString(&fields, values[n]);
                FAIL_IF(written < 0);
                SLOW_IF(written == 0);
            }
            else {
                long long integer = PyLong_AsLongLong(values[n]);
                if (integer == -1 && PyErr_Occurred()) {
                    PyErr_Clear();
                    slow = 1;
                    goto done;
                }
                FAIL_IF(!text8AppendInteger(&fields, integer));
            }
        }
        if (extraSet[0]) {
            FAIL_IF(!(first || text8Append(&fields, ",", 1)) || !text8Append(&fields, "\"trace_id\":", 11)
                    || !text8AppendHex(&fields, traceID));
            first = 0;
        }
        if (extraSet[1]) {
            FAIL_IF(!(first || text8Append(&fields, ",", 1)) || !text8Append(&fields, "\"span_id\":", 10)
                    || !text8AppendHex(&fields, spanID));
            first = 0;
        }
        if (extraSet[2]) {
            FAIL_IF(!(first || text8Append(&fields, ",", 1)) || !text8Append(&fields, "\"event_name\":", 13));
            int written = text8AppendString(&fields, eventName);
            FAIL_IF(written < 0);
            SLOW_IF(written == 0);
        }
        FAIL_IF(!text8Append(&fields, "}", 1));
        fieldsText = text8Str(&fields);
        FAIL_IF(fieldsText == NULL);
    }

    PyObject *ts;
    if (when == 0) {
        ts = received;
        Py_INCREF(ts);
    }
    else {
        ts = PyLong_FromUnsignedLongLong(when / 1000);
        FAIL_IF(ts == NULL);
    }
    if (level == NULL) {
        level = PyLong_FromLong(INFO_LEVEL);
        if (level == NULL) {
            Py_DECREF(ts);
            goto done;
        }
    }
    else {
        Py_INCREF(level);
    }
    PyObject *items[7] = {
        ts, Py_NewRef(received), level, Py_NewRef(source), Py_NewRef(service), message, fieldsText,
    };
    /* The record holds (or released) them now. */
    message = NULL;
    fieldsText = NULL;
    result = packRecord(otlpRecordType, items);

done:
#undef SLOW_IF
#undef FAIL_IF
    for (int n = 0; n < keyCount; n++) {
        Py_DECREF(keys[n]);
    }
    for (int n = 0; n < valueCount; n++) {
        Py_DECREF(values[n]);
    }
    Py_XDECREF(attributes);
    Py_XDECREF(traceID);
    Py_XDECREF(spanID);
    Py_XDECREF(eventName);
    Py_XDECREF(number);
    Py_XDECREF(severityText);
    Py_XDECREF(body);
    Py_XDECREF(message);
    Py_XDECREF(nanos);
    Py_XDECREF(fieldsText);
    text8Free(&fields);
    if (slow && result == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return result;
}

/* Hand one log record to the Python loop. */
static int
otlpPythonWay(PyObject *log, PyObject *template, PyObject *source, PyObject *received, PyObject *append,
              PyObject *refuse)
{
    PyObject *scopes = Py_BuildValue("[([O]OO)]", log, template, source);
    if (scopes == NULL) {
        return 0;
    }
    PyObject *done = PyObject_CallFunctionObjArgs(otlpPythonMap, scopes, received, append, refuse, NULL);
    Py_DECREF(scopes);
    Py_XDECREF(done);
    return done != NULL;
}

/* Map the log records of one scope (a sequence of LogRecord messages) onto
 * `records`.  1 done, 0 on error. */
static int
mapScope(PyObject *logs, PyObject *template, PyObject *source, PyObject *received, PyObject *records,
         PyObject *refuse, PyObject **append)
{
    PyObject *service = PyObject_GetAttr(template, nameService);
    PyObject *baseFields = service == NULL ? NULL : PyObject_GetAttr(template, nameFields);
    PyObject *baseTextObject = baseFields == NULL ? NULL : PyObject_GetAttr(template, nameFieldsText);
    int ok = baseTextObject != NULL;
    if (ok && (!PyDict_Check(baseFields) || !(baseTextObject == Py_None || PyUnicode_Check(baseTextObject)))) {
        PyErr_SetString(PyExc_TypeError, "mapRequest(): a template's fields are a dict and its text");
        ok = 0;
    }
    const char *baseText = NULL;
    Py_ssize_t baseLength = 0;
    if (ok && baseTextObject != Py_None) {
        baseText = PyUnicode_AsUTF8AndSize(baseTextObject, &baseLength);
        if (baseText != NULL && (baseLength < 2 || baseText[baseLength - 1] != '}')) {
            PyErr_SetString(PyExc_ValueError, "mapRequest(): a template's fields text is no JSON object");
            baseText = NULL;
        }
        ok = baseText != NULL;
    }
    Py_ssize_t count = ok ? PyObject_Length(logs) : 0;
    ok = ok && count >= 0;
    for (Py_ssize_t n = 0; ok && n < count; n++) {
        PyObject *log = PySequence_GetItem(logs, n);
        if (log == NULL) {
            ok = 0;
            break;
        }
        PyObject *record = otlpRecord(log, received, source, service, baseFields, baseText, baseLength,
                                      baseTextObject);
        if (record == NULL) {
            ok = 0;
        }
        else if (record == Py_None) {
            Py_DECREF(record);
            if (*append == NULL) {
                *append = PyObject_GetAttr(records, nameAppend);
            }
            ok = *append != NULL && otlpPythonWay(log, template, source, received, *append, refuse);
        }
        else {
            ok = PyList_Append(records, record) == 0;
            Py_DECREF(record);
        }
        Py_DECREF(log);
    }
    Py_XDECREF(service);
    Py_XDECREF(baseFields);
    Py_XDECREF(baseTextObject);
    return ok;
}

/* The template of a resource and scope name: remembered by the resource's
 * bytes when they are few, else made for this request.  A new reference,
 * or NULL on error. */
static PyObject *
scopeTemplate(PyObject *resource, PyObject *key, PyObject *scopeName)
{
    if (PyBytes_GET_SIZE(key) > otlpMemoBytes) {
        return PyObject_CallFunctionObjArgs(otlpTemplateOf, resource, scopeName, NULL);
    }
    PyObject *memoKey = PyTuple_Pack(2, key, scopeName);
    if (memoKey == NULL) {
        return NULL;
    }
    PyObject *template = PyObject_GetItem(otlpTemplates, memoKey);
    Py_DECREF(memoKey);
    return template;
}

static PyObject *
mapRequest(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!takes(nargs, 5, "mapRequest(request, peer, received, records, refuse)")) {
        return NULL;
    }
    PyObject *request = args[0], *peer = args[1], *received = args[2], *records = args[3], *refuse = args[4];
    if (otlpRecordType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "logsvc._speedups.configureOTLP() was not called");
        return NULL;
    }
    if (!PyLong_CheckExact(received) || !PyList_Check(records)) {
        PyErr_SetString(PyExc_TypeError, "mapRequest(request, peer, received: int, records: list, refuse)");
        return NULL;
    }
    PyObject *append = NULL;
    PyObject *resourceLogs = PyObject_GetAttr(request, nameResourceLogs);
    Py_ssize_t resourceCount = resourceLogs == NULL ? -1 : PyObject_Length(resourceLogs);
    int ok = resourceCount >= 0;
    for (Py_ssize_t r = 0; ok && r < resourceCount; r++) {
        PyObject *resourceScopes = NULL, *resource = NULL, *key = NULL, *scopeLogs = NULL;
        ok = 0;
        resourceScopes = PySequence_GetItem(resourceLogs, r);
        if (resourceScopes == NULL || (resource = PyObject_GetAttr(resourceScopes, nameResource)) == NULL
            || (key = PyObject_CallMethodNoArgs(resource, nameSerializeToString)) == NULL
            || (scopeLogs = PyObject_GetAttr(resourceScopes, nameScopeLogs)) == NULL) {
            goto resourceDone;
        }
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "mapRequest(): a resource serialized is not bytes");
            goto resourceDone;
        }
        Py_ssize_t scopeCount = PyObject_Length(scopeLogs);
        ok = scopeCount >= 0;
        for (Py_ssize_t s = 0; ok && s < scopeCount; s++) {
            PyObject *scopeLog = PySequence_GetItem(scopeLogs, s);
            PyObject *scope = scopeLog == NULL ? NULL : PyObject_GetAttr(scopeLog, nameScope);
            PyObject *scopeName = scope == NULL ? NULL : PyObject_GetAttr(scope, nameName);
            PyObject *template = scopeName == NULL ? NULL : scopeTemplate(resource, key, scopeName);
            PyObject *host = template == NULL ? NULL : PyObject_GetAttr(template, nameHost);
            PyObject *logs = host == NULL ? NULL : PyObject_GetAttr(scopeLog, nameLogRecords);
            ok = logs != NULL;
            if (ok) {
                /* The resource's host.name, else the peer. */
                int named = PyObject_IsTrue(host);
                ok = named >= 0
                    && mapScope(logs, template, named ? host : peer, received, records, refuse, &append);
            }
            Py_XDECREF(scopeLog);
            Py_XDECREF(scope);
            Py_XDECREF(scopeName);
            Py_XDECREF(template);
            Py_XDECREF(host);
            Py_XDECREF(logs);
        }
    resourceDone:
        Py_XDECREF(resourceScopes);
        Py_XDECREF(resource);
        Py_XDECREF(key);
        Py_XDECREF(scopeLogs);
    }
    Py_XDECREF(resourceLogs);
    Py_XDECREF(append);
    if (!ok) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
configureOTLP(PyObject *module, PyObject *args)
{
    PyObject *type, *levels, *pythonMap, *templates, *templateOf;
    int eventNames;
    Py_ssize_t memoBytes;
    if (!PyArg_ParseTuple(args, "O!O!pOO!nO", &PyType_Type, &type, &PyTuple_Type, &levels, &eventNames, &pythonMap,
                          &PyDict_Type, &templates, &memoBytes, &templateOf)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type) || PyTuple_GET_SIZE(levels) != 25
        || !PyCallable_Check(pythonMap) || !PyCallable_Check(templateOf)) {
        PyErr_SetString(PyExc_ValueError, "configureOTLP(): a tuple type, 25 levels, callables");
        return NULL;
    }
    for (Py_ssize_t n = 1; n <= 24; n++) {
        if (!PyLong_CheckExact(PyTuple_GET_ITEM(levels, n))) {
            PyErr_SetString(PyExc_ValueError, "configureOTLP(): the levels of 1..24 are integers");
            return NULL;
        }
    }
    Py_XSETREF(otlpRecordType, (PyTypeObject *)Py_NewRef(type));
    Py_XSETREF(otlpLevels, Py_NewRef(levels));
    Py_XSETREF(otlpPythonMap, Py_NewRef(pythonMap));
    Py_XSETREF(otlpTemplates, Py_NewRef(templates));
    Py_XSETREF(otlpTemplateOf, Py_NewRef(templateOf));
    otlpMemoBytes = memoBytes;
    otlpEventNames = eventNames;
    Py_RETURN_NONE;
}

static int
internNames(void)
{
    struct {
        PyObject **name;
        const char *text;
    } names[] = {
        {&nameAttributes, "attributes"},
        {&nameKey, "key"},
        {&nameValue, "value"},
        {&nameStringValue, "string_value"},
        {&nameIntValue, "int_value"},
        {&nameTraceID, "trace_id"},
        {&nameSpanID, "span_id"},
        {&nameEventName, "event_name"},
        {&nameSeverityNumber, "severity_number"},
        {&nameSeverityText, "severity_text"},
        {&nameBody, "body"},
        {&nameTimeUnixNano, "time_unix_nano"},
        {&nameObservedTimeUnixNano, "observed_time_unix_nano"},
        {&nameService, "service"},
        {&nameFields, "fields"},
        {&nameFieldsText, "fieldsText"},
        {&nameWhichOneof, "WhichOneof"},
        {&nameOneofValue, "value"},
        {&nameAppend, "append"},
        {&textTraceID, "trace_id"},
        {&textSpanID, "span_id"},
        {&textEventName, "event_name"},
        {&nameResourceLogs, "resource_logs"},
        {&nameResource, "resource"},
        {&nameSerializeToString, "SerializeToString"},
        {&nameScopeLogs, "scope_logs"},
        {&nameScope, "scope"},
        {&nameName, "name"},
        {&nameHost, "host"},
        {&nameLogRecords, "log_records"},
    };
    for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
        *names[n].name = PyUnicode_InternFromString(names[n].text);
        if (*names[n].name == NULL) {
            return 0;
        }
    }
    return 1;
}

static PyMethodDef speedupsMethods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Record, facilityJSON, months, stampCache): the record type to build; by PRI, the "
     "fields' JSON text up to the facility's closing quote; the month numbers by name; the memo of "
     "RFC 3164 stamps."},
    {"commonSyslog", (PyCFunction)(void (*)(void))commonSyslog, METH_FASTCALL,
     "commonSyslog(text, peer, received, zone) -> Record | None: the record of an RFC 5424 or RFC "
     "3164 message in its common shape, as logsvc.formats.syslog.commonSyslog reads it; None for "
     "the Python way to decide."},
    {"configureOTLP", configureOTLP, METH_VARARGS,
     "configureOTLP(Record, levels, eventNames, pythonMap, templates, memoBytes, templateOf): the record "
     "type to build; the level of each severity number 0..24; whether log records have event_name; the "
     "Python loop for the records mapRequest leaves to it (logsvc.formats.otlp._mapLogRecords); the "
     "templates remembered by (resource bytes, scope name), for resources up to memoBytes bytes; what "
     "makes the template of a larger one from (resource, scope name)."},
    {"mapRequest", (PyCFunction)(void (*)(void))mapRequest, METH_FASTCALL,
     "mapRequest(request, peer, received, records, refuse): the records of a decoded export request "
     "appended to the list records, as logsvc.formats.otlp.requestRecords maps them; the records of "
     "an uncommon shape go the Python way."},
#ifdef HAVE_RECVMMSG
    {"receiveDatagrams", (PyCFunction)(void (*)(void))receiveDatagrams, METH_FASTCALL,
     "receiveDatagrams(fd, maxBytes, maxSize) -> (datagrams, read, errno): read the non-blocking "
     "datagram socket fd until maxBytes are read or a read fails, up to 64 datagrams a recvmmsg call; "
     "datagrams as [(bytes, sender's host)], the host as socket.recvfrom gives it; errno is what "
     "ended the read (EAGAIN when the socket is empty), 0 when maxBytes did."},
#endif
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
    fillClasses();
    if (!internNames()) {
        return NULL;
    }
    return PyModule_Create(&speedupsModule);
}
