/* fuzz_config — config/config: the input written to a file and read both as a .env file
 * (cfg_load_dotenv) and as config.yaml (cfg_load), then every problem formatted and the
 * snapshot freed.
 *
 * Both readers change the process environment (.env lines, environment_variables:), and
 * cfg_load reads it (os.environ/VAR, LITELLM_MASTER_KEY, proxies). So that an input always runs
 * the same way, the environment is put back as it was at start-up after each step: variables
 * that appeared are unset, changed ones restored. (glibc keeps every string setenv() ever made;
 * that memory is reachable, not a leak.)
 *
 * The file lives in a private directory named after the pid, on tmpfs when there is one (no
 * .env beside it: cfg_load would read one), removed at exit; directories left by runs that
 * crashed are removed by the next run. Oracles: cfg_load returns a snapshot exactly when no
 * error was reported, *yaml_error only with an error, every problem has a message and formats
 * to text. */
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

extern char **environ;

static char dir[4096], path[4200];
static char **env0; /* "NAME=value" copies of the start-up environment */
static size_t nenv0;
static char **envp0; /* the pointers environ held at start-up: unchanged means untouched */

static void cleanup(void)
{
    if (path[0])
        unlink(path);
    if (dir[0])
        rmdir(dir);
}

/* Directories of runs that died (a crash skips atexit) are named after their pid: remove
 * those whose process is gone. */
static void remove_stale(const char *parent)
{
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid;
        char rest;
        if (sscanf(e->d_name, "sluice-fuzz-config-%ld%c", &pid, &rest) != 1 || pid <= 0 ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s/config.yaml", parent, e->d_name);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s", parent, e->d_name);
        rmdir(p);
    }
    closedir(d);
}

static void init(void)
{
    /* tmpfs when there is one: rewriting a file on ext4 flushes it on every close
     * (auto_da_alloc), which made this harness ten times slower */
    const char *tmp = getenv("TMPDIR");
    if (access("/dev/shm", W_OK) == 0)
        tmp = "/dev/shm";
    if (!tmp || !*tmp)
        tmp = "/tmp";
    remove_stale(tmp);
    snprintf(dir, sizeof dir, "%s/sluice-fuzz-config-%ld", tmp, (long)getpid());
    FZ_CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s", dir);
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    atexit(cleanup);
    for (char **e = environ; *e; e++)
        nenv0++;
    env0 = calloc(nenv0 + 1, sizeof *env0);
    FZ_CHECK(env0 != NULL, "calloc");
    envp0 = calloc(nenv0 + 1, sizeof *envp0);
    FZ_CHECK(envp0 != NULL, "calloc");
    for (size_t i = 0; i < nenv0; i++) {
        env0[i] = strdup(environ[i]);
        envp0[i] = environ[i];
    }
}

static const char *env0_value(const char *name, size_t nl)
{
    for (size_t i = 0; i < nenv0; i++)
        if (strncmp(env0[i], name, nl) == 0 && env0[i][nl] == '=')
            return env0[i] + nl + 1;
    return NULL;
}

static void restore_env(void)
{
    /* the usual case: nothing was set, environ holds the very same strings */
    size_t same = 0;
    while (same < nenv0 && environ[same] == envp0[same] && strcmp(environ[same], env0[same]) == 0)
        same++;
    if (same == nenv0 && environ[same] == NULL)
        return;
    /* unset what appeared; collect names first, since unsetenv reshuffles environ */
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **names = calloc(n + 1, sizeof *names);
    FZ_CHECK(names != NULL, "calloc");
    size_t k = 0;
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t nl = eq ? (size_t)(eq - *e) : strlen(*e);
        const char *v0 = env0_value(*e, nl);
        if (!v0 || !eq || strcmp(v0, eq + 1) != 0)
            names[k++] = strndup(*e, nl);
    }
    for (size_t i = 0; i < k; i++) {
        const char *v0 = env0_value(names[i], strlen(names[i]));
        if (v0)
            setenv(names[i], v0, 1);
        else
            unsetenv(names[i]);
        free(names[i]);
    }
    free(names);
    /* the same variables again, perhaps in another order and other strings: take this as the
     * new picture, so the fast path above holds for the next inputs */
    size_t m = 0;
    for (char **e = environ; *e; e++)
        m++;
    FZ_CHECK(m == nenv0, "environment not restored: %zu variables, %zu at start", m, nenv0);
    for (size_t j = 0; j < nenv0; j++) {
        free(env0[j]);
        env0[j] = strdup(environ[j]);
        envp0[j] = environ[j];
    }
}

/* libfyaml 0.7.12 (Debian 12) loops forever on a directive line holding a byte that is not
 * UTF-8 ("%\xff") and crashes (SIGSEGV in fy_parse_cleanup) on "? a:\t\0". YAML allows
 * neither NUL nor invalid UTF-8, so FUZZ_KNOWN=fyaml_invalid_bytes skips such inputs and the
 * rest of the loader gets fuzzed. Strict UTF-8: RFC 3629, no overlong forms, surrogates or
 * code points past U+10FFFF. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        if (k == 0 || i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        uint8_t d = k > 1 ? s[i + 1] : 0;
        if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F) || (c == 0xF0 && d < 0x90) ||
            (c == 0xF4 && d > 0x8F))
            return false;
        i += k;
    }
    return true;
}

/* Fills the stack below us with non-NUL bytes, so that a loader reading a stack buffer it never
 * wrote (a char key[128] left unset) fails the same way on every run instead of depending on
 * what earlier inputs left there. */
static __attribute__((noinline)) void dirty_stack(void)
{
    char junk[16384]; /* cfg_load's frame is about 10 KiB */
    memset(junk, 'A', sizeof junk);
    __asm__ volatile("" : : "r"(junk) : "memory"); /* keep the stores */
}

static void check_problems(const cfg_problems *pr, bool *any_error)
{
    *any_error = false;
    for (size_t i = 0; i < pr->n; i++) {
        FZ_CHECK(pr->v[i].msg != NULL, "problem without a message");
        if (!pr->v[i].warning)
            *any_error = true;
        char line[1024];
        cfg_problem_format(&pr->v[i], line, sizeof line);
        FZ_CHECK(memchr(line, 0, sizeof line) != NULL, "unterminated problem text");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!env0)
        init();
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f != NULL, "cannot write %s", path);
    FZ_CHECK(fwrite(data, 1, size, f) == size, "short write");
    fclose(f);

    dirty_stack();
    cfg_problems pr = {0};
    int set = cfg_load_dotenv(path, &pr);
    FZ_CHECK(set >= 0, "cfg_load_dotenv could not read its file");
    bool any_error;
    check_problems(&pr, &any_error);
    FZ_CHECK(!any_error, ".env problems are warnings only");
    cfg_problems_free(&pr);
    restore_env();

    if (fz_known("fyaml_invalid_bytes") && (memchr(data, 0, size) || !valid_utf8(data, size)))
        return unlink(path), 0;
    /* libfyaml 0.7.12 also crashes (SIGSEGV in fy_parse_cleanup, after "cannot use tab for
     * indentation") on "? a:\t?" — valid UTF-8, no NUL: FUZZ_KNOWN=fyaml_tab_crash skips
     * inputs with a tab */
    if (fz_known("fyaml_tab_crash") && memchr(data, '\t', size))
        return unlink(path), 0;

    dirty_stack();
    cfg_problems pr2 = {0};
    bool yaml_error = true;
    cfg *c = cfg_load(path, &pr2, &yaml_error);
    check_problems(&pr2, &any_error);
    FZ_CHECK(!c == any_error, "cfg_load %s but %s error was reported", c ? "succeeded" : "failed",
             any_error ? "an" : "no");
    FZ_CHECK(!yaml_error || !c, "yaml_error set on success");
    if (c) {
        for (size_t i = 0; i < c->ndeps; i++) {
            const cfg_deployment *d = &c->deps[i];
            FZ_CHECK(d->model_name && d->model, "deployment %zu without names", i);
            FZ_CHECK(cfg_find_model(c, d->model_name) != NULL, "cfg_find_model missed %s",
                     d->model_name);
        }
        FZ_CHECK(cfg_find_model(c, "\x01no-such-model") == NULL, "found a model never defined");
    }
    cfg_free(c);
    cfg_problems_free(&pr2);
    restore_env();
    unlink(path); /* a crash then leaves only an empty directory behind */
    return 0;
}
