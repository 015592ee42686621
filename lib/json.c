/* json.c — strict RFC 8259 JSON parser into one arena, and the JSON string writer.
 *
 * Recursive descent with a depth limit (JSON_MAX_DEPTH); container children are
 * collected on a scratch stack and copied into the arena when the container closes,
 * so each array/object's items are contiguous. Strings are scanned once to find their
 * end and, when they are plain printable ASCII without escapes (the common case in
 * JSON-lines corpora), copied with memcpy; otherwise decoded with full UTF-8 and
 * escape validation. Numbers are matched against the RFC grammar first and only then
 * converted (integers of up to 15 digits exactly by hand, everything else by strtod
 * on the validated span — the process must stay in the "C" LC_NUMERIC locale).
 * Never exits on bad input: returns NULL with dr_seterr("offset N: expected …").
 */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- arena ------------------------------------------------------------------- */

typedef struct Chunk Chunk;
struct Chunk {
    Chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct JsonDoc {
    Chunk *chunks;        /* head = current chunk */
    size_t next_cap;      /* size of the next chunk to allocate */
    JsonValue *root;
};

static void *arena_alloc(JsonDoc *d, size_t n) {
    n = (n + 15) & ~(size_t)15;
    Chunk *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = d->next_cap;
        if (cap < n) cap = n;
        c = xmalloc(sizeof(Chunk) + cap);
        c->used = 0;
        c->cap = cap;
        /* A big one-off allocation goes behind the current chunk so the current
         * chunk's free space keeps being used. */
        if (d->chunks && cap > d->next_cap) {
            c->next = d->chunks->next;
            d->chunks->next = c;
        } else {
            c->next = d->chunks;
            d->chunks = c;
            if (d->next_cap < ((size_t)1 << 24)) d->next_cap *= 2;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

/* ---- parser state ------------------------------------------------------------ */

typedef struct {
    const unsigned char *s;
    size_t n, pos;
    int flags;
    int depth;
    JsonDoc *doc;
    /* scratch stacks for children of the containers being parsed */
    JsonValue *vals;
    size_t nvals, capvals;
    const char **keys;
    size_t *key_lens;
    size_t nkeys, capkeys;
} Parser;

static int fail(Parser *p, size_t at, const char *what) {
    return dr_seterr("offset %zu: %s", at, what);
}

static inline void skip_ws(Parser *p) {
    const unsigned char *s = p->s;
    size_t i = p->pos, n = p->n;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
    p->pos = i;
}

static void push_val(Parser *p, const JsonValue *v) {
    if (p->nvals == p->capvals) {
        p->capvals = p->capvals ? 2 * p->capvals : 64;
        p->vals = xrealloc(p->vals, p->capvals * sizeof *p->vals);
    }
    p->vals[p->nvals++] = *v;
}

static void push_key(Parser *p, const char *k, size_t len) {
    if (p->nkeys == p->capkeys) {
        p->capkeys = p->capkeys ? 2 * p->capkeys : 32;
        p->keys = xrealloc(p->keys, p->capkeys * sizeof *p->keys);
        p->key_lens = xrealloc(p->key_lens, p->capkeys * sizeof *p->key_lens);
    }
    p->keys[p->nkeys] = k;
    p->key_lens[p->nkeys] = len;
    p->nkeys++;
}

/* ---- UTF-8 ------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s[0..n) (Unicode Table 3-7), or
 * -(length of its maximal ill-formed subpart, ≥ 1) when it is not well formed. */
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else
        return -1;
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n) return -k;
        unsigned b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -k;
    }
    return len;
}

static size_t put_utf8(unsigned char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(const unsigned char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = s[k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* ---- strings ----------------------------------------------------------------- */

/* p->pos is at the opening quote. Decodes into the arena. */
static int parse_string(Parser *p, const char **out, size_t *out_len) {
    const unsigned char *s = p->s;
    size_t n = p->n, start = p->pos + 1, i = start;
    int complex = 0;
    /* Pass 1: find the closing quote; note whether anything needs decoding. */
    for (;;) {
        if (i >= n) return fail(p, p->pos, "expected '\"' to close this string");
        unsigned c = s[i];
        if (c == '"') break;
        if (c == '\\') { complex = 1; i += 2; continue; }
        if (c < 0x20 || c >= 0x80) complex = 1;
        i++;
    }
    size_t end = i, raw = end - start;
    unsigned char *o = arena_alloc(p->doc, raw + 1);
    if (!complex) {
        memcpy(o, s + start, raw);
        o[raw] = 0;
        *out = (const char *)o;
        *out_len = raw;
        p->pos = end + 1;
        return 0;
    }
    /* Pass 2: validate and decode. Output never exceeds the raw length. */
    size_t k = 0;
    i = start;
    while (i < end) {
        unsigned c = s[i];
        if (c == '\\') {
            if (i + 1 >= end) return fail(p, i, "expected an escape character after '\\'");
            unsigned e = s[i + 1];
            switch (e) {
            case '"': o[k++] = '"'; i += 2; break;
            case '\\': o[k++] = '\\'; i += 2; break;
            case '/': o[k++] = '/'; i += 2; break;
            case 'b': o[k++] = '\b'; i += 2; break;
            case 'f': o[k++] = '\f'; i += 2; break;
            case 'n': o[k++] = '\n'; i += 2; break;
            case 'r': o[k++] = '\r'; i += 2; break;
            case 't': o[k++] = '\t'; i += 2; break;
            case 'u': {
                uint32_t cp;
                if (i + 6 > end || hex4(s + i + 2, &cp))
                    return fail(p, i, "expected 4 hex digits after '\\u'");
                uint32_t lo = 0;
                int paired = cp >= 0xD800 && cp <= 0xDBFF && i + 12 <= end && s[i + 6] == '\\' &&
                             s[i + 7] == 'u' && hex4(s + i + 8, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF;
                if (paired) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 12;
                } else if (cp >= 0xD800 && cp <= 0xDFFF && !(p->flags & JSON_LONE_SURROGATE_BYTES)) {
                    if (cp >= 0xDC00)
                        return fail(p, i, "expected a high surrogate before this low surrogate escape");
                    return fail(p, i + 6, "expected a low surrogate escape '\\uDC00'..'\\uDFFF' after a high surrogate");
                } else {
                    i += 6;   /* a lone surrogate (flag set) becomes its 3 bytes: ED A0..BF xx */
                }
                k += put_utf8(o + k, cp);
                break;
            }
            default:
                return fail(p, i + 1, "expected one of \" \\ / b f n r t u after '\\'");
            }
        } else if (c < 0x20) {
            return fail(p, i, "expected no raw control character in a string (escape it)");
        } else if (c < 0x80) {
            o[k++] = (unsigned char)c;
            i++;
        } else {
            int len = utf8_seq(s + i, end - i);
            if (len < 0) {
                if (!(p->flags & JSON_KEEP_INVALID_UTF8))
                    return fail(p, i, "expected valid UTF-8 in string");
                len = -len;
            }
            memcpy(o + k, s + i, (size_t)len);
            k += (size_t)len;
            i += (size_t)len;
        }
    }
    o[k] = 0;
    *out = (const char *)o;
    *out_len = k;
    p->pos = end + 1;
    return 0;
}

/* ---- numbers ----------------------------------------------------------------- */

static int parse_number(Parser *p, double *out) {
    const unsigned char *s = p->s;
    size_t n = p->n, i = p->pos, start = i;
    int neg = 0, simple = 1;
    if (s[i] == '-') { neg = 1; i++; }
    if (i >= n || s[i] < '0' || s[i] > '9') return fail(p, i, "expected a digit");
    size_t int_start = i;
    if (s[i] == '0') i++;
    else while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    size_t int_digits = i - int_start;
    if (i < n && s[i] == '.') {
        simple = 0;
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return fail(p, i, "expected a digit after '.'");
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        simple = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return fail(p, i, "expected a digit in the exponent");
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    p->pos = i;
    if (simple && int_digits <= 15) {
        int64_t v = 0;
        for (size_t k = int_start; k < i; k++) v = v * 10 + (s[k] - '0');
        *out = neg ? -(double)v : (double)v;
        return 0;
    }
    char small[64];
    size_t len = i - start;
    char *buf = len < sizeof small ? small : xmalloc(len + 1);
    memcpy(buf, s + start, len);
    buf[len] = 0;
    double v = strtod(buf, NULL);
    if (buf != small) free(buf);
    if (isinf(v) && !(p->flags & JSON_HUGE_NUMBER_INF))
        return fail(p, start, "expected a number within the range of a double");
    *out = v;
    return 0;
}

/* ---- values ------------------------------------------------------------------ */

static int parse_value(Parser *p, JsonValue *v);

static int parse_array(Parser *p, JsonValue *v) {
    size_t base = p->nvals;
    p->pos++;   /* '[' */
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == ']') {
        p->pos++;
    } else {
        for (;;) {
            JsonValue item;
            if (parse_value(p, &item)) return -1;
            push_val(p, &item);
            skip_ws(p);
            if (p->pos >= p->n) return fail(p, p->pos, "expected ',' or ']' in array");
            unsigned c = p->s[p->pos];
            if (c == ',') { p->pos++; skip_ws(p); continue; }
            if (c == ']') { p->pos++; break; }
            return fail(p, p->pos, "expected ',' or ']' in array");
        }
    }
    size_t cnt = p->nvals - base;
    memset(v, 0, sizeof *v);
    v->type = JSON_ARRAY;
    v->len = cnt;
    if (cnt) {
        v->items = arena_alloc(p->doc, cnt * sizeof *v->items);
        memcpy(v->items, p->vals + base, cnt * sizeof *v->items);
    }
    p->nvals = base;
    return 0;
}

static int parse_object(Parser *p, JsonValue *v) {
    size_t vbase = p->nvals, kbase = p->nkeys;
    p->pos++;   /* '{' */
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == '}') {
        p->pos++;
    } else {
        for (;;) {
            if (p->pos >= p->n || p->s[p->pos] != '"')
                return fail(p, p->pos, "expected '\"' starting an object key");
            const char *key;
            size_t klen;
            if (parse_string(p, &key, &klen)) return -1;
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':')
                return fail(p, p->pos, "expected ':' after object key");
            p->pos++;
            skip_ws(p);
            JsonValue item;
            if (parse_value(p, &item)) return -1;
            push_key(p, key, klen);
            push_val(p, &item);
            skip_ws(p);
            if (p->pos >= p->n) return fail(p, p->pos, "expected ',' or '}' in object");
            unsigned c = p->s[p->pos];
            if (c == ',') { p->pos++; skip_ws(p); continue; }
            if (c == '}') { p->pos++; break; }
            return fail(p, p->pos, "expected ',' or '}' in object");
        }
    }
    size_t cnt = p->nvals - vbase;
    memset(v, 0, sizeof *v);
    v->type = JSON_OBJECT;
    v->len = cnt;
    if (cnt) {
        v->items = arena_alloc(p->doc, cnt * sizeof *v->items);
        memcpy(v->items, p->vals + vbase, cnt * sizeof *v->items);
        v->keys = arena_alloc(p->doc, cnt * sizeof *v->keys);
        memcpy(v->keys, p->keys + kbase, cnt * sizeof *v->keys);
        v->key_lens = arena_alloc(p->doc, cnt * sizeof *v->key_lens);
        memcpy(v->key_lens, p->key_lens + kbase, cnt * sizeof *v->key_lens);
    }
    p->nvals = vbase;
    p->nkeys = kbase;
    return 0;
}

static int match_word(Parser *p, const char *w, size_t wl, const char *what) {
    if (p->n - p->pos < wl || memcmp(p->s + p->pos, w, wl) != 0) return fail(p, p->pos, what);
    p->pos += wl;
    return 0;
}

/* p->pos is at the first character of the value (whitespace already skipped). */
static int parse_value(Parser *p, JsonValue *v) {
    if (p->pos >= p->n) return fail(p, p->pos, "expected a JSON value");
    memset(v, 0, sizeof *v);
    unsigned c = p->s[p->pos];
    switch (c) {
    case '"':
        v->type = JSON_STRING;
        return parse_string(p, &v->str, &v->len);
    case '{':
    case '[': {
        if (p->depth >= JSON_MAX_DEPTH) {
            char msg[96];
            snprintf(msg, sizeof msg, "expected nesting depth at most %d", JSON_MAX_DEPTH);
            return fail(p, p->pos, msg);
        }
        p->depth++;
        int r = c == '{' ? parse_object(p, v) : parse_array(p, v);
        p->depth--;
        return r;
    }
    case 't': v->type = JSON_TRUE; return match_word(p, "true", 4, "expected 'true'");
    case 'f': v->type = JSON_FALSE; return match_word(p, "false", 5, "expected 'false'");
    case 'n': v->type = JSON_NULL; return match_word(p, "null", 4, "expected 'null'");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            v->type = JSON_NUMBER;
            return parse_number(p, &v->number);
        }
        return fail(p, p->pos, "expected a JSON value");
    }
}

JsonDoc *json_parse(const char *text, size_t len, int flags) {
    JsonDoc *doc = xcalloc(1, sizeof *doc);
    doc->next_cap = len + 1024 < 4096 ? 4096 : len + 1024;
    if (doc->next_cap > ((size_t)1 << 24)) doc->next_cap = (size_t)1 << 24;
    Parser p = {.s = (const unsigned char *)text, .n = len, .flags = flags, .doc = doc};
    doc->root = arena_alloc(doc, sizeof *doc->root);
    skip_ws(&p);
    int r = parse_value(&p, doc->root);
    if (r == 0) {
        skip_ws(&p);
        if (p.pos != p.n) r = fail(&p, p.pos, "expected end of input after the JSON value");
    }
    free(p.vals);
    free(p.keys);
    free(p.key_lens);
    if (r) {
        json_free(doc);
        return NULL;
    }
    return doc;
}

const JsonValue *json_root(const JsonDoc *doc) { return doc->root; }

void json_free(JsonDoc *doc) {
    if (!doc) return;
    for (Chunk *c = doc->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(doc);
}

static const JsonValue *get_n(const JsonValue *obj, const char *key, size_t kl) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (size_t i = obj->len; i-- > 0;)   /* from the end: the last duplicate wins */
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0) return &obj->items[i];
    return NULL;
}

const JsonValue *json_get(const JsonValue *obj, const char *key) {
    return get_n(obj, key, strlen(key));
}

static const JsonValue *get_path_n(const JsonValue *obj, const char *path, size_t n) {
    const JsonValue *v = get_n(obj, path, n);   /* the whole name first */
    for (size_t i = 0; !v && i < n; i++)        /* then "a" . "b.c", "a.b" . "c", … */
        if (path[i] == '.') v = get_path_n(get_n(obj, path, i), path + i + 1, n - i - 1);
    return v;
}

const JsonValue *json_get_path(const JsonValue *obj, const char *path) {
    return get_path_n(obj, path, strlen(path));
}

/* ---- writer ------------------------------------------------------------------ */

char *json_format_number(char *out, double v) {
    snprintf(out, JSON_NUMBER_MAX, "%.17g", v);          /* always reads back */
    int exponent_ok = strchr(out, 'e') != NULL;         /* else a whole 564756480 stays so */
    char shorter[JSON_NUMBER_MAX];
    for (int prec = 1; prec < 17; prec++) {
        snprintf(shorter, sizeof shorter, "%.*g", prec, v);
        if (strtod(shorter, NULL) == v && (exponent_ok || !strchr(shorter, 'e'))) {
            memcpy(out, shorter, sizeof shorter);
            break;
        }
    }
    return out;
}

void json_write_string(FILE *f, const char *str, size_t len) {
    static const char hexd[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0;   /* start of the pending run of bytes written as they are */
    fputc('"', f);
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') { i++; continue; }
        if (c >= 0x80) {
            int l = utf8_seq(s + i, len - i);
            if (l > 0) { i += (size_t)l; continue; }
            fwrite(s + run, 1, i - run, f);
            fputs("\xEF\xBF\xBD", f);   /* U+FFFD for the maximal ill-formed subpart */
            i += (size_t)-l;
            run = i;
            continue;
        }
        fwrite(s + run, 1, i - run, f);
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default: {
            char u[7] = {'\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15], 0};
            fputs(u, f);
        }
        }
        i++;
        run = i;
    }
    fwrite(s + run, 1, i - run, f);
    fputc('"', f);
}

const char *json_type_name(JsonType t) {
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_FALSE: return "false";
    case JSON_TRUE: return "true";
    case JSON_NUMBER: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
    }
    return "a JSON value";
}
