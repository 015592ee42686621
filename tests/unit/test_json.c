/* test_json.c — the JSON parser against RFC 8259 (accept/refuse lists, escapes,
 * surrogates, UTF-8 validation, numbers, depth), the writer's escaping and U+FFFD
 * replacement, error offsets, random corruptions (never crash) and parse speed. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "json.h"
#include "test.h"

static JsonDoc *parse(const char *s) { return json_parse(s, strlen(s), 0); }

static int accepts(const char *s) {
    JsonDoc *d = parse(s);
    json_free(d);
    return d != NULL;
}

static void test_accept_refuse(void) {
    static const char *good[] = {
        "null", "true", "false", "0", "-0", "1", "-1", "0.5", "1e5", "1E+5", "1e-5", "-1.25e-3",
        "\"\"", "\"abc\"", "[]", "{}", " [ ] ", "\t\r\n{ \"a\" : [1, 2, {\"b\": null}] }\n",
        "[1,[2,[3,[4]]]]", "{\"a\":1,\"a\":2}", "\"\\u00e9\\ud83d\\ude00\"", "\"\\/\"",
        "123456789012345678901234567890", "1e-400", "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"",
    };
    static const char *bad[] = {
        "", " ", "nul", "nulll", "True", "[", "]", "{", "}", "[1,]", "[,1]", "{\"a\":1,}",
        "{\"a\"}", "{\"a\" 1}", "{a:1}", "{'a':1}", "['a']", "01", "-", "+1", "1.", ".5",
        "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "1e400", "-1e400",
        "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"a\nb\"", "\"a\tb\"", "\"\x01\"",
        "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"",
        "\"\xC0\xAF\"", "\"\xE0\x80\xAF\"", "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"",
        "\"\xF8\x88\x80\x80\x80\"", "\"\x80\"", "\"\xC3\"", "\"\xE2\x82\"", "\"\xFF\"",
        "1 2", "[] []", "{}x", "/* c */ 1", "1 // c", "\xEF\xBB\xBF{}", "[1 2]", "{\"a\":1 \"b\":2}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        TEST_CHECK(accepts(good[i]), "should accept <%s>: %s", good[i], dr_lasterr());
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        TEST_CHECK(!accepts(bad[i]), "should refuse <%s>", bad[i]);
}

static void test_values(void) {
    const char *s = "{\"name\": \"x\\\"y\\\\z\\n\", \"n\": -12.5e1, \"arr\": [true, false, null, 7],"
                    " \"nul\": \"a\\u0000b\", \"emoji\": \"\\uD83D\\uDE00\", \"dup\": 1, \"dup\": 2,"
                    " \"big\": 9007199254740993, \"frac\": 0.1, \"\": {}}";
    JsonDoc *d = parse(s);
    TEST_CHECK(d != NULL, "parse: %s", dr_lasterr());
    if (!d) return;
    const JsonValue *r = json_root(d);
    TEST_CHECK(r->type == JSON_OBJECT && r->len == 10, "root object with 10 members (%zu)", r->len);
    const JsonValue *v = json_get(r, "name");
    TEST_CHECK(v && v->type == JSON_STRING && v->len == 6 && memcmp(v->str, "x\"y\\z\n", 7) == 0,
               "escapes decoded");
    v = json_get(r, "n");
    TEST_CHECK(v && v->type == JSON_NUMBER && v->number == -125.0, "number");
    v = json_get(r, "arr");
    TEST_CHECK(v && v->type == JSON_ARRAY && v->len == 4 && v->items[0].type == JSON_TRUE &&
                   v->items[1].type == JSON_FALSE && v->items[2].type == JSON_NULL &&
                   v->items[3].type == JSON_NUMBER && v->items[3].number == 7,
               "array items");
    v = json_get(r, "nul");
    TEST_CHECK(v && v->len == 3 && memcmp(v->str, "a\0b", 4) == 0, "\\u0000 kept with length");
    v = json_get(r, "emoji");
    TEST_CHECK(v && v->len == 4 && memcmp(v->str, "\xF0\x9F\x98\x80", 4) == 0, "surrogate pair");
    v = json_get(r, "dup");
    TEST_CHECK(v && v->number == 2, "last duplicate wins");
    v = json_get(r, "big");
    TEST_CHECK(v && v->number == 9007199254740992.0, "strtod rounding of 2^53+1");
    v = json_get(r, "frac");
    TEST_CHECK(v && v->number == 0.1, "0.1 exact strtod");
    v = json_get(r, "");
    TEST_CHECK(v && v->type == JSON_OBJECT && v->len == 0, "empty key, empty object");
    TEST_CHECK(json_get(r, "missing") == NULL, "missing key");
    TEST_CHECK(json_get(json_get(r, "missing"), "x") == NULL, "chained lookup on NULL");
    TEST_CHECK(json_get(json_get(r, "arr"), "x") == NULL, "lookup on an array");
    json_free(d);

    /* Numbers: integer fast path and strtod agree, -0 keeps its sign. */
    const char *nums[] = {"0", "-0", "42", "-999999999999999", "1000000000000000", "123456789012345",
                          "3.141592653589793", "2.5e-308", "1.7976931348623157e308", "4.9e-324"};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        d = parse(nums[i]);
        TEST_CHECK(d && json_root(d)->number == strtod(nums[i], NULL), "number %s", nums[i]);
        if (i == 1) TEST_CHECK(d && signbit(json_root(d)->number), "-0 sign");
        json_free(d);
    }
}

/* The flags for data input: lone surrogate escapes as their 3 bytes, huge numbers as inf. */
static void test_data_flags(void) {
    const char *lone = "[\"a\\ud800b\", \"\\udc00\\ud83d\\ude00\", \"\\ud800\\u0041\"]";
    TEST_CHECK(!accepts(lone), "lone surrogates refused without the flag");
    JsonDoc *d = json_parse(lone, strlen(lone), JSON_LONE_SURROGATE_BYTES);
    TEST_CHECK(d != NULL, "lone surrogates with JSON_LONE_SURROGATE_BYTES: %s", d ? "" : dr_lasterr());
    if (d) {
        const JsonValue *r = json_root(d);
        TEST_CHECK(r->items[0].len == 5 && memcmp(r->items[0].str, "a\xED\xA0\x80" "b", 5) == 0, "high alone: ED A0 80");
        TEST_CHECK(r->items[1].len == 7 && memcmp(r->items[1].str, "\xED\xB0\x80\xF0\x9F\x98\x80", 7) == 0,
                   "low alone, then a pair");
        TEST_CHECK(r->items[2].len == 4 && memcmp(r->items[2].str, "\xED\xA0\x80" "A", 4) == 0,
                   "high before a non-surrogate escape");
        json_free(d);
    }
    const char *huge = "[1e400, -1e999, 1e-400]";
    TEST_CHECK(!accepts(huge), "1e400 refused without the flag");
    d = json_parse(huge, strlen(huge), JSON_HUGE_NUMBER_INF);
    TEST_CHECK(d && isinf(json_root(d)->items[0].number) && json_root(d)->items[0].number > 0 &&
                   isinf(json_root(d)->items[1].number) && json_root(d)->items[1].number < 0 &&
                   json_root(d)->items[2].number == 0, "JSON_HUGE_NUMBER_INF: +inf, -inf, 0");
    json_free(d);
}

static void test_errors(void) {
    struct { const char *in; const char *msg; } cases[] = {
        {"", "offset 0: expected a JSON value"},
        {"[1,2", "offset 4: expected ',' or ']' in array"},
        {"{\"a\":1 x", "offset 7: expected ',' or '}' in object"},
        {"{1:2}", "offset 1: expected '\"' starting an object key"},
        {"{\"a\" 1}", "offset 5: expected ':' after object key"},
        {"[1] 2", "offset 4: expected end of input after the JSON value"},
        {"  \"abc", "offset 2: expected '\"' to close this string"},
        {"\"ab\xFF\"", "offset 3: expected valid UTF-8 in string"},
        {"[01]", "offset 2: expected ',' or ']' in array"},
        {"-x", "offset 1: expected a digit"},
        {"\"\\q\"", "offset 2: expected one of \" \\ / b f n r t u after '\\'"},
        {"tru", "offset 0: expected 'true'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        TEST_CHECK(!accepts(cases[i].in), "refuse %s", cases[i].in);
        TEST_CHECK(strcmp(dr_lasterr(), cases[i].msg) == 0, "message for <%s>: got '%s', want '%s'",
                   cases[i].in, dr_lasterr(), cases[i].msg);
    }
}

static void test_keep_invalid(void) {
    const char *s = "[\"a\xFF\xC3\x28\xED\xA0\x80z\"]";
    TEST_CHECK(json_parse(s, strlen(s), 0) == NULL, "invalid UTF-8 refused by default");
    JsonDoc *d = json_parse(s, strlen(s), JSON_KEEP_INVALID_UTF8);
    TEST_CHECK(d != NULL, "kept with JSON_KEEP_INVALID_UTF8: %s", dr_lasterr());
    if (d) {
        const JsonValue *v = &json_root(d)->items[0];
        TEST_CHECK(v->len == 8 && memcmp(v->str, "a\xFF\xC3\x28\xED\xA0\x80z", 8) == 0, "bytes unchanged");
    }
    json_free(d);
    /* control characters are still refused */
    TEST_CHECK(json_parse("\"\x01\"", 3, JSON_KEEP_INVALID_UTF8) == NULL, "control char refused");
}

static void test_depth(void) {
    int n = JSON_MAX_DEPTH;
    char *s = malloc(2 * (size_t)n + 8);
    memset(s, '[', (size_t)n);
    memset(s + n, ']', (size_t)n);
    s[2 * n] = 0;
    TEST_CHECK(accepts(s), "depth %d accepted: %s", n, dr_lasterr());
    free(s);
    n = 1000000;
    s = malloc(2 * (size_t)n + 8);
    memset(s, '[', (size_t)n);
    memset(s + n, ']', (size_t)n);
    s[2 * n] = 0;
    TEST_CHECK(!accepts(s), "depth 1e6 refused without crashing");
    TEST_CHECK(strstr(dr_lasterr(), "nesting depth") != NULL, "depth message: %s", dr_lasterr());
    free(s);
}

static char *write_to_string(const char *s, size_t len, size_t *out_len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, out_len);
    json_write_string(f, s, len);
    fclose(f);
    return buf;
}

static void test_writer(void) {
    size_t n;
    const char esc[] = "a\"b\\c\n\t\r\b\f\x01\x1f\x7f/";
    char *o = write_to_string(esc, sizeof esc - 1, &n);
    TEST_CHECK(strcmp(o, "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f/\"") == 0, "escapes: %s", o);
    free(o);
    o = write_to_string("x\0y", 3, &n);
    TEST_CHECK(strcmp(o, "\"x\\u0000y\"") == 0, "NUL escaped: %s", o);
    free(o);
    /* Valid multi-byte UTF-8 passes through; each maximal invalid subpart -> U+FFFD. */
    const char in[] = "\xC3\xA9|\xF0\x9F\x98\x80|\xF0\x9F\x98|\xC0\xAF|\xED\xA0\x80|\xFF|\xE2\x82";
    o = write_to_string(in, sizeof in - 1, &n);
    const char *want = "\"\xC3\xA9|\xF0\x9F\x98\x80|\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD|"
                       "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|\xEF\xBF\xBD|\xEF\xBF\xBD\"";
    TEST_CHECK(strcmp(o, want) == 0, "U+FFFD replacement: %s", o);
    free(o);
    /* Round trip: every byte 0..127 and a few UTF-8 characters. */
    char all[200];
    size_t k = 0;
    for (int c = 0; c < 128; c++) all[k++] = (char)c;
    memcpy(all + k, "\xE2\x82\xAC\xF4\x8F\xBF\xBF", 7);
    k += 7;
    o = write_to_string(all, k, &n);
    JsonDoc *d = json_parse(o, n, 0);
    TEST_CHECK(d && json_root(d)->type == JSON_STRING && json_root(d)->len == k &&
                   memcmp(json_root(d)->str, all, k) == 0,
               "write -> parse round trip");
    json_free(d);
    free(o);
}

/* json_format_number: reads back bit for bit, and no fewer digits would. */
static void test_number_format(void) {
    char out[JSON_NUMBER_MAX], shorter[320];
    const struct { double v; const char *text; } known[] = {
        {0.1, "0.1"}, {1.0 / 3.0, "0.3333333333333333"}, {0.9, "0.9"}, {1.0 - 0.1 - 0.05, "0.85"},
        {1e-3, "0.001"}, {564756480, "564756480"}, {1.3271398639835546e+18, "1.3271398639835546e+18"},
        {5e-324, "5e-324"}, {-0.0, "-0"}, {1.7976931348623157e308, "1.7976931348623157e+308"}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        TEST_CHECK(!strcmp(json_format_number(out, known[i].v), known[i].text), "%s, want %s", out, known[i].text);
    uint64_t s = 12345;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t bits = s ^ (s >> 29);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        json_format_number(out, v);
        int digits = 0, leading = 1;   /* significant digits */
        for (const char *c = out; *c && *c != 'e'; c++)
            if (*c >= '1' && *c <= '9') leading = 0, digits++;
            else if (*c == '0' && !leading) digits++;
        snprintf(shorter, sizeof shorter, "%.*g", digits - 1, v);   /* one digit fewer */
        int shorter_reads_back = digits > 1 && strtod(shorter, NULL) == v &&
                                 (strchr(out, 'e') || !strchr(shorter, 'e'));   /* same notation */
        if (strtod(out, NULL) != v || shorter_reads_back) {
            if (bad++ < 3) fprintf(stderr, "  %a: %s (%s with a digit fewer)\n", v, out, shorter);
        }
    }
    TEST_CHECK(bad == 0, "random doubles: %d read back wrong or not shortest", bad);
}

/* Random corruptions of a valid document: must return a doc or NULL, never crash. */
static void test_corruptions(void) {
    const char *base = "{\"text\": \"h\\u00e9llo \\ud83d\\ude00 w\xC3\xB6rld\", \"id\": [1, -2.5e3, true, null],"
                       " \"meta\": {\"a\": \"b\", \"c\": [[], {}]}}";
    size_t n = strlen(base);
    char buf[256];
    uint64_t x = 12345;
    int accepted = 0;
    for (int it = 0; it < 200000; it++) {
        memcpy(buf, base, n);
        int edits = 1 + it % 3;
        for (int e = 0; e < edits; e++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (x >> 33) % n;
            buf[pos] = (char)(x >> 17);
        }
        size_t len = (it % 7 == 0) ? (x >> 40) % (n + 1) : n;
        JsonDoc *d = json_parse(buf, len, it & 1 ? JSON_KEEP_INVALID_UTF8 : 0);
        accepted += d != NULL;
        json_free(d);
    }
    TEST_CHECK(1, "corruptions survived (%d accepted)", accepted);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* JSON-lines throughput: ~32 MB of {"text": …, "id": …} lines. */
static void test_speed(void) {
    size_t cap = 34u << 20, n = 0;
    char *buf = malloc(cap);
    size_t lines = 0;
    while (n + 8192 < cap) {
        n += (size_t)sprintf(buf + n, "{\"id\": %zu, \"source\": \"enron/mail\", \"text\": \"", lines);
        for (int k = 0; k < 40; k++)
            n += (size_t)sprintf(buf + n, "%s", k % 9 == 0 ? "Caf\xC3\xA9 line\\nwith \\\"quotes\\\" " : "plain ascii words here ");
        n += (size_t)sprintf(buf + n, "\"}\n");
        lines++;
    }
    double t0 = now();
    size_t ok = 0, start = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\n') {
            JsonDoc *d = json_parse(buf + start, i - start, 0);
            ok += d && json_get(json_root(d), "text") != NULL;
            json_free(d);
            start = i + 1;
        }
    double dt = now() - t0;
    TEST_CHECK(ok == lines, "all %zu lines parsed (%zu)", lines, ok);
    double mbs = n / 1e6 / dt;
    printf("json: %.1f MB of JSON lines in %.3f s = %.0f MB/s\n", n / 1e6, dt, mbs);
    TEST_CHECK(mbs > 20, "JSON-lines parse at least 20 MB/s (got %.1f)", mbs);
    free(buf);
}

/* json_get_path: the whole name first, then every split at a dot, left to right */
static void test_paths(void) {
    JsonDoc *d = parse("{\"meta\": {\"src\": \"a\", \"x.y\": \"b\", \"x\": {\"y\": \"c\"}},"
                       " \"top.level\": \"d\", \"top\": {\"level\": \"e\"}, \"n\": 5,"
                       " \"arr\": [{\"k\": \"f\"}], \"p\": {\"q\": 1}}");
    TEST_CHECK(d != NULL, "parse: %s", dr_lasterr());
    if (!d) return;
    const JsonValue *r = json_root(d);
    struct { const char *path, *want; } cases[] = {
        {"meta.src", "a"},        /* one level down */
        {"meta.x.y", "b"},        /* "x.y" is a key of meta: before meta.x.y as x → y */
        {"top.level", "d"},       /* a key holding the dot wins over top → level */
        {"n", NULL},              /* not a string: returned, but as a number (below) */
        {"meta.nope", NULL}, {"nope.src", NULL}, {"n.x", NULL},   /* absent; not an object */
        {"arr.0.k", NULL},        /* arrays are not indexed */
        {"meta.", NULL}, {".src", NULL}, {"meta..src", NULL}, {"p.q.r", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const JsonValue *v = json_get_path(r, cases[i].path);
        if (cases[i].want)
            TEST_CHECK(v && v->type == JSON_STRING && strcmp(v->str, cases[i].want) == 0,
                       "path %s: %s", cases[i].path, cases[i].want);
        else if (!strcmp(cases[i].path, "n"))
            TEST_CHECK(v && v->type == JSON_NUMBER && v->number == 5, "path n: the number");
        else
            TEST_CHECK(v == NULL, "path %s: absent", cases[i].path);
    }
    const JsonValue *x = json_get_path(r, "meta.x");
    TEST_CHECK(x && x->type == JSON_OBJECT && json_get_path(x, "y") && !strcmp(json_get_path(x, "y")->str, "c"),
               "path meta.x: the object");
    TEST_CHECK(json_get_path(NULL, "a.b") == NULL, "NULL object");
    json_free(d);
}

int main(void) {
    test_accept_refuse();
    test_values();
    test_paths();
    test_data_flags();
    test_errors();
    test_keep_invalid();
    test_depth();
    test_writer();
    test_number_format();
    test_corruptions();
    test_speed();
    return test_finish("test_json");
}
