/* test_inputs.c — command-line inputs to shard lists: shard files, directories (sorted
 * *.drs only), manifests (splits, comments kept, paths relative to the manifest, a
 * directory on a line), split filtering, and the errors: missing file, malformed line
 * with its number, empty directory or manifest, mixed tokenizers naming both files. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "inputs.h"
#include "shard.h"
#include "test.h"

static void make_shard(const char *path, uint64_t fingerprint) {
    DrsWriter *w = drs_writer_open(path, 100, fingerprint, "t");
    uint32_t toks[] = {1, 2, 3};
    CHECK(w && drs_writer_add(w, 1, "s", toks, 3) == 0 && drs_writer_close(w) == 0, "%s", dr_lasterr());
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0, "cannot write %s", path);
}

int main(void) {
    char dir[64] = "/dev/shm/test_inputs.XXXXXX", p[256], q[256];
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/test_inputs.XXXXXX");
        CHECK(mkdtemp(dir), "mkdtemp failed");
    }
    snprintf(p, sizeof p, "%s/d", dir);
    mkdir(p, 0777);
    const char *names[] = {"d/b.drs", "d/a.drs", "d/c.drs", "x.drs", "y.drs"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        make_shard(p, i == 4 ? 2 : 1);
    }
    snprintf(p, sizeof p, "%s/d/notes.txt", dir);
    write_text(p, "not a shard\n");

    /* a directory: its *.drs, sorted */
    ShardList l = {0};
    snprintf(p, sizeof p, "%s/d", dir);
    char *in1[] = {p};
    TEST_CHECK(shardlist_add_inputs(&l, 1, in1) == 0, "directory: %s", dr_lasterr());
    TEST_CHECK(l.n == 3 && strstr(l.items[0].path, "a.drs") && strstr(l.items[2].path, "c.drs") &&
               l.items[0].split[0] == 0, "directory listing");
    shardlist_free(&l);

    /* a manifest: relative paths, a directory line, comments kept, split filter */
    snprintf(q, sizeof q, "%s/m.tsv", dir);
    write_text(q, "# made by hand\nval\tx.drs\r\n\ntrain_a\td\n# second comment\n");
    char *in2[] = {q};
    TEST_CHECK(shardlist_add_inputs(&l, 1, in2) == 0, "manifest: %s", dr_lasterr());
    TEST_CHECK(l.n == 4 && strcmp(l.items[0].split, "val") == 0, "manifest entries: %zu", l.n);
    snprintf(p, sizeof p, "%s/x.drs", dir);
    TEST_CHECK(l.n && strcmp(l.items[0].path, p) == 0, "relative path: %s", l.n ? l.items[0].path : "");
    TEST_CHECK(l.comments && strcmp(l.comments, "# made by hand\n# second comment\n") == 0, "comments");
    TEST_CHECK(shardlist_check_tokenizer(&l, NULL, NULL) == 0, "one tokenizer: %s", dr_lasterr());
    shardlist_filter_split(&l, "train_a");
    TEST_CHECK(l.n == 3, "filter split: %zu", l.n);
    shardlist_free(&l);

    /* errors */
    write_text(q, "val\tx.drs\ntrain_a x.drs\n");
    TEST_CHECK(shardlist_add_inputs(&l, 1, in2) < 0 && strstr(dr_lasterr(), "m.tsv:2:"), "bad line: %s", dr_lasterr());
    shardlist_free(&l);
    write_text(q, "val\tmissing.drs\n");
    TEST_CHECK(shardlist_add_inputs(&l, 1, in2) < 0 && strstr(dr_lasterr(), "m.tsv:1:") &&
               strstr(dr_lasterr(), "missing.drs"), "missing shard: %s", dr_lasterr());
    shardlist_free(&l);
    write_text(q, "# only a comment\n");
    TEST_CHECK(shardlist_add_inputs(&l, 1, in2) < 0 && strstr(dr_lasterr(), "no shards"), "empty manifest");
    shardlist_free(&l);
    snprintf(p, sizeof p, "%s/empty", dir);
    mkdir(p, 0777);
    char *in3[] = {p};
    TEST_CHECK(shardlist_add_inputs(&l, 1, in3) < 0 && strstr(dr_lasterr(), "no *.drs"), "empty dir");
    shardlist_free(&l);
    snprintf(p, sizeof p, "%s/x.drs", dir);
    snprintf(q, sizeof q, "%s/y.drs", dir);
    char *in4[] = {p, q};
    TEST_CHECK(shardlist_add_inputs(&l, 2, in4) == 0, "two shards");
    TEST_CHECK(shardlist_check_tokenizer(&l, NULL, NULL) < 0 && strstr(dr_lasterr(), "x.drs") &&
               strstr(dr_lasterr(), "y.drs"), "mixed tokenizers: %s", dr_lasterr());
    shardlist_free(&l);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_inputs");
}
