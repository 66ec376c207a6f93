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

typedef struct {
    char text[FIELDS_MAX];
    Py_ssize_t length;
} Buffer;

static inline int
append(Buffer *b, const char *s, Py_ssize_t n)
{
    if (b->length + n > FIELDS_MAX) {
        return 0;
    }
    memcpy(b->text + b->length, s, (size_t)n);
    b->length += n;
    return 1;
}

/* Append t[start:end], known to be ASCII. */
static inline int
appendSlice(Buffer *b, const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    return append(b, (const char *)t->data + start, end - start);
}

static PyObject *
newRecord(long long ts, PyObject *received, int severity, PyObject *source, PyObject *service,
          PyObject *message, PyObject *fields)
{
    /* Steals the references to source, service, message and fields. */
    PyObject *record = NULL;
    PyObject *tsObject = PyLong_FromLongLong(ts);
    PyObject *level = PyLong_FromLong(severity);
    if (tsObject == NULL || level == NULL) {
        goto fail;
    }
    record = recordType->tp_alloc(recordType, 7);
    if (record == NULL) {
        goto fail;
    }
    Py_INCREF(received);
    PyTuple_SET_ITEM(record, 0, tsObject);
    PyTuple_SET_ITEM(record, 1, received);
    PyTuple_SET_ITEM(record, 2, level);
    PyTuple_SET_ITEM(record, 3, source);
    PyTuple_SET_ITEM(record, 4, service);
    PyTuple_SET_ITEM(record, 5, message);
    PyTuple_SET_ITEM(record, 6, fields);
    return record;
fail:
    Py_XDECREF(tsObject);
    Py_XDECREF(level);
    Py_DECREF(source);
    Py_DECREF(service);
    Py_DECREF(message);
    Py_DECREF(fields);
    return NULL;
}

/* A syslog record: its MSG is text[messageStart:messageEnd], its fields'
 * JSON text (ASCII) in `fields`.  Steals the references to source and
 * service, either of which may be NULL (an error is set). */
static PyObject *
syslogRecord(long long ts, PyObject *received, long pri, PyObject *source, PyObject *service,
             PyObject *text, Py_ssize_t messageStart, Py_ssize_t messageEnd, const Buffer *fields)
{
    PyObject *message = PyUnicode_Substring(text, messageStart, messageEnd);
    PyObject *fieldsObject = PyUnicode_New(fields->length, 127);
    if (fieldsObject != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(fieldsObject), fields->text, (size_t)fields->length);
    }
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
startFields(Buffer *fields, long pri)
{
    Py_ssize_t length;
    const char *text = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(facilityJSON, pri), &length);
    fields->length = 0;
    if (text == NULL) {
        return 0;
    }
    if (!append(fields, text, length)) {
        PyErr_SetString(PyExc_ValueError, "a facility's JSON text is too long");
        return 0;
    }
    return 1;
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
    Buffer fields;
    if (!startFields(&fields, pri)) {
        return NULL;
    }
    int ok = 1;
    int nilProc = procEnd - procStart == 1 && charAt(&t, procStart) == '-';
    int nilMsgid = msgidEnd - msgidStart == 1 && charAt(&t, msgidStart) == '-';
    if (!nilProc) {
        ok = ok && append(&fields, ",\"procid\":\"", 11) && appendSlice(&fields, &t, procStart, procEnd)
            && append(&fields, "\"", 1);
    }
    if (!nilMsgid) {
        ok = ok && append(&fields, ",\"msgid\":\"", 10) && appendSlice(&fields, &t, msgidStart, msgidEnd)
            && append(&fields, "\"", 1);
    }
    for (int n = 0; n < paramCount; n++) {
        ok = ok && append(&fields, ",\"", 2) && appendSlice(&fields, &t, sdStart, sdEnd) && append(&fields, ".", 1)
            && appendSlice(&fields, &t, params[n].nameStart, params[n].nameEnd) && append(&fields, "\":\"", 3)
            && appendSlice(&fields, &t, params[n].valueStart, params[n].valueEnd) && append(&fields, "\"", 1);
    }
    ok = ok && append(&fields, "}", 1);
    if (!ok) {
        Py_RETURN_NONE;
    }

    if (nilStamp) {
        ts = PyLong_AsLongLong(received);
        if (ts == -1 && PyErr_Occurred()) {
            PyErr_Clear();
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
    long long ts;
    long long receiveDay = receivedMicros / 86400000000LL;
    if (receivedMicros % 86400000000LL < 0) {
        receiveDay--;
    }
    /* The last stamp read, kept here: senders write many messages a second,
     * and a message of the same second, receive day and zone needs no key
     * built nor memo looked up. */
    Py_ssize_t stampLength = timeStart + 8 - stampStart;
    if (lastStampValid && stampLength == lastStampLength && receiveDay == lastReceiveDay && zone == lastZone
        && memcmp(t.data + stampStart, lastStamp, (size_t)stampLength) == 0) {
        ts = lastWhole;
    }
    else {
    PyObject *key = Py_BuildValue(
        "(lNNNNLO)", month, PyUnicode_Substring(textObject, dayStart, dayEnd),
        PyUnicode_Substring(textObject, timeStart, timeStart + 2),
        PyUnicode_Substring(textObject, timeStart + 3, timeStart + 5),
        PyUnicode_Substring(textObject, timeStart + 6, timeStart + 8), receiveDay, zone);
    if (key == NULL) {
        return NULL;
    }
    PyObject *whole = PyObject_GetItem(stampCache, key);
    Py_DECREF(key);
    if (whole == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        return NULL;
    }
    ts = PyLong_AsLongLong(whole);
    Py_DECREF(whole);
    if (ts == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    lastStampValid = stampLength <= (Py_ssize_t)sizeof(lastStamp);
    if (lastStampValid) {
        memcpy(lastStamp, t.data + stampStart, (size_t)stampLength);
        lastStampLength = stampLength;
        lastReceiveDay = receiveDay;
        Py_INCREF(zone);
        Py_XSETREF(lastZone, zone);
        lastWhole = ts;
    }
    }
    ts += fraction;

    Buffer fields;
    if (!startFields(&fields, pri)) {
        return NULL;
    }
    if ((pidEnd > pidStart
            && !(append(&fields, ",\"procid\":\"", 11) && appendSlice(&fields, &t, pidStart, pidEnd)
                 && append(&fields, "\"", 1)))
        || !append(&fields, "}", 1)) {
        Py_RETURN_NONE;
    }
    PyObject *source = PyUnicode_Substring(textObject, hostStart, hostEnd);
    PyObject *service = PyUnicode_Substring(textObject, tagStart, tagEnd);
    return syslogRecord(ts, received, pri, source, service, textObject, messageStart, messageEnd, &fields);
}

static PyObject *
commonSyslog(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "commonSyslog(text, peer, received, zone)");
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
    Py_INCREF(type);
    Py_XSETREF(recordType, (PyTypeObject *)type);
    Py_INCREF(facilities);
    Py_XSETREF(facilityJSON, facilities);
    Py_INCREF(stamps);
    Py_XSETREF(stampCache, stamps);
    lastStampValid = 0;
    Py_RETURN_NONE;
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
    return PyModule_Create(&speedupsModule);
}
