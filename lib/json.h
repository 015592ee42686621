/* json.h — a small, strict JSON reader (RFC 8259), a string writer and a number formatter.
 *
 * Used for JSON-lines input, encoder.json, safetensors headers and metrics. The
 * parser builds a tree in one arena; strings are decoded to UTF-8 with their byte
 * length (they may contain NUL from \u0000). Surrogate pairs are combined; a lone
 * surrogate escape is an error, unless the caller asks for its bytes
 * (JSON_LONE_SURROGATE_BYTES: the code point's 3-byte form ED A0..BF 80..BF, what
 * Python's "surrogatepass" writes; invalid UTF-8, for the caller's policy to meet).
 * Raw invalid UTF-8 inside strings is an error unless
 * the caller asks for it to be kept (JSON_KEEP_INVALID_UTF8), in which case the
 * bytes are passed through unchanged. Depth is limited (no stack overflow on
 * "[[[[[…": at most JSON_MAX_DEPTH nested arrays/objects). Errors report the byte
 * offset and what was expected: "offset 12: expected ',' or '}' in object".
 * Numbers follow the RFC grammar exactly (no NaN, no leading '+', no hex); a number
 * beyond the range of a double is an error, or ±inf with JSON_HUGE_NUMBER_INF (as Python
 * and JavaScript read it: for data whose numbers the caller does not use). Duplicate object keys are accepted and
 * kept in order; json_get returns the last one (as JavaScript and Python do).
 * A BOM is not skipped. Parsing uses strtod: keep LC_NUMERIC at "C".
 */
#ifndef DR_JSON_H
#define DR_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonType;

typedef struct JsonValue JsonValue;
struct JsonValue {
    JsonType type;
    double number;          /* JSON_NUMBER */
    const char *str;        /* JSON_STRING: UTF-8, NUL-terminated, may contain NULs */
    size_t len;             /* string byte length, or number of array/object items */
    JsonValue *items;       /* array elements / object values (len of them) */
    const char **keys;      /* object keys (len of them) */
    size_t *key_lens;
};

typedef struct JsonDoc JsonDoc;   /* owns the arena */

enum { JSON_KEEP_INVALID_UTF8 = 1, JSON_LONE_SURROGATE_BYTES = 2, JSON_HUGE_NUMBER_INF = 4 };
enum { JSON_MAX_DEPTH = 512 };

/* Parses text[0..len). NULL on error with dr_seterr("offset N: expected …"). */
JsonDoc *json_parse(const char *text, size_t len, int flags);
const JsonValue *json_root(const JsonDoc *doc);
void json_free(JsonDoc *doc);
/* Member of an object by key (the last one if the key is repeated), or NULL; NULL
 * also when obj is NULL or not an object, so lookups chain safely. */
const JsonValue *json_get(const JsonValue *obj, const char *key);
/* A member by a dotted path: "meta.source" is obj["meta.source"] when obj has that key,
 * else obj["meta"]["source"] (each part read the same way, so keys holding dots are
 * found too), or NULL. */
const JsonValue *json_get_path(const JsonValue *obj, const char *path);
/* "null", "false", "true", "a number", "a string", "an array", "an object": for messages
 * about a value of the wrong type. */
const char *json_type_name(JsonType t);

/* Writes s[0..len) as a JSON string literal, quotes included, escaping '"', '\\' and
 * control characters. JSON text must be UTF-8, so each invalid UTF-8 sequence is
 * written as U+FFFD. */
void json_write_string(FILE *f, const char *s, size_t len);
/* The shortest "%.Pg" (P = 1 … 17) that strtod reads back as exactly v, as Python's
 * repr and JavaScript print a double ("0.1", not %.17g's "0.10000000000000001"), in
 * the notation %.17g uses (a whole 564756480 stays so, not 5.6475648e+08): for numbers
 * people read that must still read back bit-exactly. v finite; out holds
 * JSON_NUMBER_MAX bytes. Returns out. */
#define JSON_NUMBER_MAX 32
char *json_format_number(char *out, double v);

#endif
