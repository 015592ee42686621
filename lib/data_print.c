/* data_print.c — dr-cat --examples: the examples exactly as the loader forms them
 * (see data.h). Apart from data.c so that programs that only train do not link the
 * tokenizers. Must never print a window other than the one data_get would batch.
 * A write error (a full disk) stops it at the next example, with one line (as dr-cat's
 * other outputs, lib/cat.c), not after the whole corpus.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data.h"
#include "json.h"
#include "tokenizer.h"

int data_print_examples(DataLoader *d, FILE *f, int ids, uint64_t head) {
    Tokenizer *tok = NULL;
    if (!ids) {
        const char *spec = data_tokenizer_spec(d);
        if (!spec || !spec[0])
            return dr_seterr("%s: the shard names no tokenizer; use --ids", data_shard_path(d, 0));
        tok = tokenizer_from_spec(spec);
        if (!tok)
            return dr_seterr("%s: cannot load the tokenizer it names, \"%s\": %s (use --ids)",
                             data_shard_path(d, 0), spec, dr_lasterr());
        if (tokenizer_check_fingerprint(tok, data_fingerprint(d), data_shard_path(d, 0)) != 0) {
            tokenizer_free(tok);
            return -1;
        }
    }
    uint32_t *window = xmalloc(((size_t)data_options(d)->seq_len + 1) * sizeof *window);
    char *line = ids ? xmalloc(((size_t)data_options(d)->seq_len + 1) * 11) : NULL;   /* 10 digits and a space per token */
    ByteBuf text = {0};
    char id[DATA_ID_MAX];
    int rc = 0;
    uint64_t n = data_num_examples(d);
    if (head > 0 && head < n) n = head;
    for (uint64_t i = 0; i < n && rc == 0 && !ferror(f); i++) {   /* a full disk: stop now */
        DataExample e = data_example(d, i);
        if (data_read_example(d, i, window) != 0) { rc = -1; break; }
        data_example_id(d, i, id);
        fputs(id, f);
        fputc('\t', f);
        if (ids) {   /* by hand: fprintf per token took 5 times as long as decoding to text */
            char *p = line;
            for (uint32_t t = 0; t < e.length; t++) {
                char digits[10];
                int k = 0;
                uint32_t v = window[t];
                do digits[k++] = (char)('0' + v % 10); while ((v /= 10) != 0);
                if (t) *p++ = ' ';
                while (k > 0) *p++ = digits[--k];
            }
            fwrite(line, 1, (size_t)(p - line), f);
        } else {
            text.n = 0;
            if (tokenizer_decode(tok, window, e.length, &text) != 0) { rc = -1; break; }
            json_write_string(f, text.bytes, text.n);
        }
        fputc('\n', f);
    }
    free(window);
    free(line);
    bytebuf_free(&text);
    if (tok) tokenizer_free(tok);
    if (rc == 0 && (fflush(f) != 0 || ferror(f)))
        rc = dr_seterr("cannot write the output: %s", strerror(errno));
    return rc;
}
