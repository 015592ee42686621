/* inputs.c — command-line inputs (shards, directories, manifests, "-") to a list of
 * shards (see inputs.h). Never exits on bad input: -1 + dr_seterr naming the file
 * (and the manifest line) that is wrong. */
#include "inputs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "shard.h"

static void list_push(ShardList *list, const char *split, const char *path) {
    if (list->n == list->cap) {
        list->cap = list->cap ? 2 * list->cap : 16;
        list->items = xrealloc(list->items, list->cap * sizeof *list->items);
    }
    list->items[list->n++] = (ShardRef){xstrdup(split), xstrdup(path)};
}

/* An input as the messages name it: a manifest (is_manifest), or a shard or directory
 * given directly. */
static void source_push(ShardList *list, const char *name, int is_manifest) {
    if (list->n_sources == list->cap_sources) {
        list->cap_sources = list->cap_sources ? 2 * list->cap_sources : 4;
        list->sources = xrealloc(list->sources, list->cap_sources * sizeof *list->sources);
    }
    list->sources[list->n_sources++] = (ShardSource){xstrdup(name), is_manifest};
}

static void append_comment(ShardList *list, const char *line) {
    size_t old = list->comments_len, n = strlen(line);
    if (old + n + 2 > list->comments_cap) {   /* geometric: linear in the manifest's size */
        size_t cap = list->comments_cap ? list->comments_cap : 256;
        while (cap < old + n + 2) cap *= 2;
        list->comments = xrealloc(list->comments, cap);
        list->comments_cap = cap;
    }
    list->comments_len = old + n + 1;
    memcpy(list->comments + old, line, n);
    list->comments[old + n] = '\n';
    list->comments[old + n + 1] = '\0';
}


static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.drs files of dir, sorted by name. */
static int add_directory(ShardList *list, const char *split, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return dr_seterr("%s: cannot read directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".drs")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *path = dr_path_join(dir, names[i]);
        list_push(list, split, path);
        free(path);
        free(names[i]);
    }
    free(names);
    return n ? 0 : dr_seterr("%s: no *.drs shards in this directory", dir);
}

/* A shard by name (*.drs) or by its first bytes. */
static int looks_like_shard(const char *path) {
    if (ends_with(path, ".drs")) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[8];
    int is = fread(magic, 1, 8, f) == 8 && memcmp(magic, "DRSHARD1", 8) == 0;
    fclose(f);
    return is;
}

/* Adds a path named on a manifest line or the command line: directory or shard. */
static int add_path(ShardList *list, const char *split, const char *path, int manifest_ok);

static int add_manifest_line(ShardList *list, char *line, const char *name, long lineno,
                             const char *base_dir) {
    char *tab = strchr(line, '\t');
    if (!tab || tab == line || !tab[1])
        return dr_seterr("%s:%ld: expected \"split<TAB>path\", got \"%.60s\"", name, lineno, line);
    *tab = '\0';
    const char *split = line, *path = tab + 1;
    if (strpbrk(split, " \t") || strchr(path, '\t'))
        return dr_seterr("%s:%ld: expected \"split<TAB>path\"", name, lineno);
    char *full = (base_dir && path[0] != '/') ? dr_path_join(base_dir, path) : xstrdup(path);
    int rc = add_path(list, split, full, 0);
    if (rc < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_lasterr());
        dr_seterr("%s:%ld: %s", name, lineno, msg);
    }
    free(full);
    return rc;
}

/* A manifest line is a split name and a path (at most PATH_MAX): far below this. A file
 * that is not a manifest (/dev/zero on stdin, a large binary) ends here, not in memory
 * exhaustion. */
#define MANIFEST_LINE_MAX (1u << 20)

/* Reads a manifest from f; name is used in messages; relative paths are joined to
 * base_dir (NULL: the current directory). */
static int add_manifest(ShardList *list, FILE *f, const char *name, const char *base_dir) {
    char *line = NULL;
    size_t cap = 0, before = list->n;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    source_push(list, name, 1);
    while (rc == 0 && (len = dr_getline_max(&line, &cap, f, MANIFEST_LINE_MAX)) != -1) {
        lineno++;
        if (len == -2) {
            rc = dr_seterr("%s:%ld: a line longer than %u bytes: not a manifest", name, lineno, MANIFEST_LINE_MAX);
            break;
        }
        if (lineno == 1) len = dr_drop_bom(line, len);   /* an editor's byte-order mark */
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (lineno == 1 && len >= 8 && memcmp(line, "DRSHARD1", 8) == 0)   /* dr-cat - < x.drs */
            rc = dr_seterr("%s: holds a token shard, not a manifest: give the shard's path instead", name);
        else if ((size_t)len != strlen(line)) rc = dr_seterr("%s:%ld: NUL byte in a manifest line", name, lineno);
        else if (line[0] == '#') append_comment(list, line);
        else if (len > 0) rc = add_manifest_line(list, line, name, lineno, base_dir);
    }
    if (rc == 0 && ferror(f)) rc = dr_seterr("%s: read error: %s", name, strerror(errno));
    if (rc == 0 && list->n == before) rc = dr_seterr("%s: manifest lists no shards", name);
    free(line);
    return rc;
}

static int add_manifest_file(ShardList *list, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return dr_seterr("%s: cannot open: %s", path, strerror(errno));
    char *base = xstrdup(path), *slash = strrchr(base, '/');
    if (slash) slash[1] = '\0';
    int rc = add_manifest(list, f, path, slash ? base : NULL);
    free(base);
    fclose(f);
    return rc;
}

static int add_path(ShardList *list, const char *split, const char *path, int manifest_ok) {
    struct stat st;
    if (stat(path, &st) != 0) return dr_seterr("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (manifest_ok) source_push(list, path, 0);   /* an input of the command line */
        return add_directory(list, split, path);
    }
    if (!S_ISREG(st.st_mode)) return dr_seterr("%s: not a file or directory", path);
    if (!manifest_ok || looks_like_shard(path)) {
        if (manifest_ok) source_push(list, path, 0);
        list_push(list, split, path);
        return 0;
    }
    return add_manifest_file(list, path);
}

int file_key_cmp(const void *a, const void *b) {
    const FileKey *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

int shardlist_check_repeats(const ShardList *list, int across_splits) {
    FileKey *k = xmalloc((list->n ? list->n : 1) * sizeof *k);
    size_t m = 0;
    for (size_t i = 0; i < list->n; i++) {
        struct stat st;
        if (stat(list->items[i].path, &st) == 0) k[m++] = (FileKey){st.st_dev, st.st_ino, i};
    }
    qsort(k, m, sizeof *k, file_key_cmp);
    int rc = 0;
    for (size_t a = 0; a + 1 < m && rc == 0; a++)
        for (size_t b = a + 1; b < m && k[b].dev == k[a].dev && k[b].ino == k[a].ino && rc == 0; b++) {
            const ShardRef *x = &list->items[k[a].i], *y = &list->items[k[b].i];
            const int other_path = strcmp(x->path, y->path) != 0;
            if (strcmp(x->split, y->split) == 0)
                rc = dr_seterr("%s is given twice%s%s%s%s%s: its documents would count twice",
                               y->path, x->split[0] ? " in split " : "", x->split,
                               other_path ? " (also as " : "", other_path ? x->path : "", other_path ? ")" : "");
            else if (across_splits)
                rc = dr_seterr("%s%s%s is given twice (also as %s%s%s): its documents would count twice",
                               y->path, y->split[0] ? " in split " : "", y->split, x->path,
                               x->split[0] ? " in split " : "", x->split);
        }
    free(k);
    return rc;
}

int shardlist_add_inputs(ShardList *list, int n, char **inputs) {
    for (int i = 0; i < n; i++) {
        int rc = strcmp(inputs[i], "-") == 0 ? add_manifest(list, stdin, "(stdin)", NULL)
                                             : add_path(list, "", inputs[i], 1);
        if (rc < 0) return -1;
    }
    return shardlist_check_repeats(list, 0);
}

void shardlist_copy_split(ShardList *dst, const ShardList *src, const char *split) {
    for (size_t i = 0; i < src->n; i++)
        if (!split || strcmp(src->items[i].split, split) == 0)
            list_push(dst, src->items[i].split, src->items[i].path);
}

int shardlist_has_split(const ShardList *list, const char *split) {
    for (size_t i = 0; i < list->n; i++)
        if (split ? strcmp(list->items[i].split, split) == 0 : list->items[i].split[0] != 0) return 1;
    return 0;
}

void shardlist_split_names(const ShardList *list, char *buf, size_t cap) {
    size_t len = 0, n_names = 0;
    const char *names[64];   /* the distinct names so far: compare with them, not every line */
    buf[0] = 0;
    for (size_t i = 0; i < list->n; i++) {
        const char *sp = list->items[i].split;
        int seen = !sp[0];
        for (size_t j = 0; j < n_names && !seen; j++) seen = strcmp(names[j], sp) == 0;
        if (seen) continue;
        if (n_names == sizeof names / sizeof *names) break;   /* more names than buf shows */
        names[n_names++] = sp;
        if (len < cap) len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", sp);
    }
}

void shardlist_filter_split(ShardList *list, const char *split) {
    size_t kept = 0;
    for (size_t i = 0; i < list->n; i++) {
        if (strcmp(list->items[i].split, split) == 0) {
            list->items[kept++] = list->items[i];
        } else {
            free(list->items[i].split);
            free(list->items[i].path);
        }
    }
    list->n = kept;
}

/* The inputs a list was read from, for messages: into buf the manifests among them (or,
 * when there is none, all of them), "a, b, c and 2 more"; "the inputs" when the list
 * records none. Returns how many are meant. */
static size_t source_names(const ShardList *list, char *buf, size_t cap) {
    size_t n_man = 0, n = 0;
    for (size_t i = 0; i < list->n_sources; i++) n_man += list->sources[i].is_manifest != 0;
    const char **names = xmalloc((list->n_sources + 1) * sizeof *names);
    for (size_t i = 0; i < list->n_sources; i++)
        if (!n_man || list->sources[i].is_manifest) names[n++] = list->sources[i].name;
    dr_join_names(buf, cap, names, n, 3);
    free(names);
    if (!n) snprintf(buf, cap, "the inputs");
    return n;
}

int shardlist_no_split(const ShardList *list, const char *split, const char *for_what,
                       const char *option, const char *hint) {
    char who[1024], names[512];
    size_t n = source_names(list, who, sizeof who);
    shardlist_split_names(list, names, sizeof names);
    if (names[0])
        return dr_seterr("%s: no shards of split '%s'%s (%s splits: %s)%s", who, split, for_what,
                         n == 1 ? "its" : "their", names, hint);
    char why[128] = "";
    if (option) snprintf(why, sizeof why, ": %s picks lines of a manifest", option);
    return dr_seterr("%s: no shards of split '%s'%s (%s no split%s)%s", who, split, for_what,
                     n == 1 ? "it names" : "they name", why, hint);
}

int shardlist_select_split(ShardList *list, const char *split) {
    if (!split) return list->n == 0 ? dr_seterr("no shards in the inputs") : 0;
    if (!shardlist_has_split(list, split)) return shardlist_no_split(list, split, "", "--split", "");
    shardlist_filter_split(list, split);
    return 0;
}

int shardlist_check_tokenizer(const ShardList *list, uint64_t *fingerprint, uint32_t *vocab_size) {
    if (list->n == 0) return dr_seterr("no shards given");
    uint64_t fp0 = 0;
    uint32_t vocab0 = 0;
    char *spec0 = NULL;
    for (size_t i = 0; i < list->n; i++) {
        DrsReader *r = drs_open(list->items[i].path);
        if (!r) {
            free(spec0);
            return -1;
        }
        if (i == 0) {
            fp0 = drs_fingerprint(r);
            vocab0 = drs_vocab_size(r);
            spec0 = xstrdup(drs_tokenizer_spec(r));
        } else if (drs_fingerprint(r) != fp0 || drs_vocab_size(r) != vocab0) {
            dr_seterr("%s and %s were made by different tokenizers (\"%s\", fingerprint %016llx, "
                      "vocab %u vs \"%s\", fingerprint %016llx, vocab %u): refusing to mix them",
                      list->items[0].path, list->items[i].path, spec0, (unsigned long long)fp0,
                      vocab0, drs_tokenizer_spec(r), (unsigned long long)drs_fingerprint(r),
                      drs_vocab_size(r));
            drs_close(r);
            free(spec0);
            return -1;
        }
        drs_close(r);
    }
    free(spec0);
    if (fingerprint) *fingerprint = fp0;
    if (vocab_size) *vocab_size = vocab0;
    return 0;
}

void shardlist_free(ShardList *list) {
    for (size_t i = 0; i < list->n; i++) {
        free(list->items[i].split);
        free(list->items[i].path);
    }
    free(list->items);
    free(list->comments);
    for (size_t i = 0; i < list->n_sources; i++) free(list->sources[i].name);
    free(list->sources);
    *list = (ShardList){0};
}
