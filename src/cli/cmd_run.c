/*
 * cmd_run.c - gpucoord run --need SIZE [...] -- CMD [ARGS...]
 *
 * Takes a lease for the CLI's own pid (heartbeats from libgpucoord's thread),
 * then runs CMD as a child bound to the granted GPU (CUDA_VISIBLE_DEVICES, and
 * gpusim's driver and state when the coordinator runs on gpusim; build_env). The
 * lease ends when the command ends, however it ends: the CLI releases it after
 * reaping the child; if the CLI itself is SIGKILLed the child gets SIGKILL too
 * (PR_SET_PDEATHSIG) and the coordinator ends the lease because the CLI's pid
 * is gone. SIGINT, SIGTERM and SIGHUP are forwarded to the child. The exit
 * status is the command's (128+N when it died of signal N).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/names.h"

#define RUN_DEFAULT_WAIT_S 600.0
/* File descriptors below this that the CLI did not inherit are closed in the child
 * (libcurl's sockets must not leak into the command). */
#define RUN_FD_SCAN_MAX 1024
#define RUN_PATH_MAX    4096
/* A GPU UUID as NVML writes it ("GPU-" and 36 characters), with room to spare. */
#define RUN_UUID_MAX 96

struct run_args {
    uint64_t need_bytes;
    int gpu;
    long priority;
    double wait_s;
    double ttl_s;
    char holder[GC_NAME_MAX + 1];
    bool verbose;
    bool autolease; /* --auto: the interposer leases from inside the command */
    char **cmd;     /* NULL-terminated */
};

/* Everything the child needs, prepared before fork(): after fork() in a process
 * with threads the child may only make async-signal-safe calls. */
struct run_exec {
    char path[RUN_PATH_MAX];
    char **argv;
    char **sh_argv; /* "/bin/sh PATH ARGS..." for scripts without a #! line */
    char **envp;
    sigset_t old_mask;
    pid_t parent;
};

static unsigned char inherited_fds[RUN_FD_SCAN_MAX / 8];
static volatile sig_atomic_t child_pid;
static volatile sig_atomic_t pending_signal;

static void usage(FILE *f)
{
    fprintf(f, "usage: gpucoord run --need SIZE [--gpu N|any] [--priority P] [--wait SECONDS]\n"
               "                    [--holder NAME] [--ttl SECONDS] [-v] -- CMD [ARGS...]\n"
               "       gpucoord run --auto [--need SIZE] [--priority P] [--wait SECONDS]\n"
               "                    [--holder NAME] -- CMD [ARGS...]\n"
               "\n"
               "Takes a lease of SIZE GPU memory from the coordinator (which unloads idle\n"
               "residents to make room and checks through NVML that the memory is free), runs\n"
               "CMD, and ends the lease when CMD ends, however it ends. The command sees\n"
               "CUDA_VISIBLE_DEVICES set to the granted GPU's UUID (so it uses that GPU and\n"
               "no other), GPUCOORD_LEASE_ID, GPUCOORD_GPU (the GPU index, as NVML numbers\n"
               "it), GPUCOORD_GPU_UUID and GPUCOORD_URL; on gpusim also the simulated\n"
               "driver's LD_LIBRARY_PATH and GPUSIM_STATE.\n"
               "\n"
               "  --need SIZE      GPU memory the command needs (19.6Gi, 512Mi, 20G)\n"
               "  --gpu N|any      which GPU (default any: where it fits with the least eviction)\n"
               "  --priority P     lease priority, higher wins (default: the coordinator's, 100)\n"
               "  --wait SECONDS   how long to wait for the grant (default 600; 0 = not at all)\n"
               "  --holder NAME    name shown in status (default: the command's basename)\n"
               "  --ttl SECONDS    heartbeat TTL (default: the coordinator's); heartbeats are\n"
               "                   sent for you while the command runs\n"
               "  -v, --verbose    say on stderr when the lease is granted and released\n"
               "  --auto           no lease up front: CMD runs with libgpucoord-intercept.so\n"
               "                   preloaded, which leases what it allocates as it allocates\n"
               "                   (docs/intercept.md); --need is then room taken at its first\n"
               "                   context, --wait how long each allocation may wait\n"
               "\n"
               "SIGINT, SIGTERM and SIGHUP are passed on to the command. If gpucoord is killed\n"
               "the command is killed too and the coordinator ends the lease.\n"
               "\n"
               "Exit: the command's status, 128+N if it died of signal N; 2 usage error;\n"
               "3 lease not granted (never fits, could not free, still queued after --wait)\n"
               "and the command was not run; 4 coordinator unreachable or error;\n"
               "126 command not executable; 127 command not found.\n");
}

static void on_signal(int sig, siginfo_t *info, void *uctx)
{
    pid_t pid = (pid_t)child_pid;
    int saved = errno;

    (void)uctx;
    if (pid <= 0)
        pending_signal = sig;
    else if (info == NULL || info->si_code != SI_KERNEL)
        kill(pid, sig); /* a terminal's signal (SI_KERNEL) reached the child's group already */
    errno = saved;
}

static void record_inherited_fds(void)
{
    memset(inherited_fds, 0, sizeof(inherited_fds));
    for (int fd = 0; fd < RUN_FD_SCAN_MAX; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            inherited_fds[fd / 8] |= (unsigned char)(1u << (fd % 8));
}

/* The holder name from the command's basename, cut to the allowed alphabet. */
static void default_holder(const char *cmd, char *out, size_t len)
{
    const char *base = strrchr(cmd, '/');
    size_t n = 0;

    base = base ? base + 1 : cmd;
    for (; *base && n + 1 < len && n < GC_NAME_MAX; base++) {
        char ch = *base;
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        out[n++] = ok ? ch : '_';
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, len, "run");
}

static int parse_args(int argc, char **argv, struct cli *cli, struct run_args *a)
{
    static const struct option opts[] = {
        {"need", required_argument, NULL, 'n'},
        {"gpu", required_argument, NULL, 'g'},
        {"priority", required_argument, NULL, 'p'},
        {"wait", required_argument, NULL, 'w'},
        {"holder", required_argument, NULL, 'H'},
        {"ttl", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"auto", no_argument, NULL, 'a'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    bool have_need = false, have_gpu = false, have_ttl = false;
    const char *holder = NULL;
    int c;

    memset(a, 0, sizeof(*a));
    a->gpu = GPUCOORD_GPU_ANY;
    a->wait_s = RUN_DEFAULT_WAIT_S;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:hv", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (cli_parse_size("run", "--need", optarg, true, &a->need_bytes) != 0)
                return CLI_EXIT_USAGE;
            have_need = true;
            break;
        case 'g':
            if (cli_parse_gpu("run", "--gpu", optarg, &a->gpu) != 0)
                return CLI_EXIT_USAGE;
            have_gpu = true;
            break;
        case 'p':
            if (cli_parse_int("run", "--priority", optarg, -1000000, 1000000, &a->priority) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'w':
            if (cli_parse_seconds("run", "--wait", optarg, 0, &a->wait_s) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_seconds("run", "--ttl", optarg, 0.1, &a->ttl_s) != 0)
                return CLI_EXIT_USAGE;
            have_ttl = true;
            break;
        case 'a':
            a->autolease = true;
            break;
        case 'H':
            if (cli_check_name("run", "--holder", optarg) != 0)
                return CLI_EXIT_USAGE;
            holder = optarg;
            break;
        case 'v':
            a->verbose = true;
            break;
        case 'U':
            cli->url = optarg;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            return cli_bad_option("run", c, argv);
        }
    }
    if (!have_need && !a->autolease)
        return cli_usage_error("run", "--need SIZE is required (or --auto)");
    /* The interposer leases on the GPU the command uses, for as long as it lives. */
    if (a->autolease && (have_gpu || have_ttl))
        return cli_usage_error("run", "--gpu and --ttl do not go with --auto");
    if (optind >= argc)
        return cli_usage_error("run", "no command given (gpucoord run --need SIZE -- CMD)");
    a->cmd = argv + optind;
    if (a->cmd[0][0] == '\0')
        return cli_usage_error("run", "the command is an empty string");
    if (holder != NULL)
        snprintf(a->holder, sizeof(a->holder), "%s", holder);
    else
        default_holder(a->cmd[0], a->holder, sizeof(a->holder));
    return 0;
}

/* Finds cmd like a shell does: a name with a '/' as is, else along $PATH. Returns 0,
 * CLI_EXIT_NOTFOUND or CLI_EXIT_NOEXEC (after printing why). */
static int resolve_command(const char *cmd, char *path, size_t len)
{
    const char *search = getenv("PATH");
    bool denied = false;
    struct stat st;

    if (strchr(cmd, '/') != NULL) {
        if (snprintf(path, len, "%s", cmd) >= (int)len) {
            cli_error("%s: path too long", cmd);
            return CLI_EXIT_NOTFOUND;
        }
        if (stat(path, &st) != 0) {
            cli_error("%s: %s", cmd, strerror(errno));
            return errno == ENOENT || errno == ENOTDIR ? CLI_EXIT_NOTFOUND : CLI_EXIT_NOEXEC;
        }
        if (S_ISDIR(st.st_mode) || access(path, X_OK) != 0) {
            cli_error("%s: %s", cmd, S_ISDIR(st.st_mode) ? "is a directory" : "permission denied");
            return CLI_EXIT_NOEXEC;
        }
        return 0;
    }
    if (search == NULL)
        search = "/usr/local/bin:/usr/bin:/bin";
    while (search != NULL) {
        const char *colon = strchr(search, ':');
        int dlen = colon ? (int)(colon - search) : (int)strlen(search);
        int n = snprintf(path, len, "%.*s%s%s", dlen, search, dlen ? "/" : "", cmd);
        search = colon ? colon + 1 : NULL;
        if (n < 0 || (size_t)n >= len)
            continue;
        if (stat(path, &st) != 0 || S_ISDIR(st.st_mode))
            continue;
        if (access(path, X_OK) == 0)
            return 0;
        denied = true;
    }
    if (denied) {
        cli_error("%s: permission denied", cmd);
        return CLI_EXIT_NOEXEC;
    }
    cli_error("%s: command not found", cmd);
    return CLI_EXIT_NOTFOUND;
}

static void free_strv(char **v, bool owned)
{
    if (v == NULL)
        return;
    if (owned)
        for (char **p = v; *p; p++)
            free(*p);
    free(v);
}

/* What binds the command to its lease: the granted GPU's UUID, and where gpusim's
 * driver and state are when the coordinator runs on gpusim (NULL otherwise). */
struct run_binding {
    char uuid[RUN_UUID_MAX];
    char *gpusim_libdir;
    char *gpusim_state;
};

static void binding_free(struct run_binding *b)
{
    free(b->gpusim_libdir);
    free(b->gpusim_state);
    memset(b, 0, sizeof(*b));
}

/* GET /v1/gpus for the granted GPU's UUID and the gpusim object. Returns 0, or an exit
 * code after printing why. */
static int fetch_binding(struct cli *cli, int gpu, struct run_binding *b)
{
    json_t *ans = NULL, *g, *sim;
    size_t i;
    long status;
    int rc;

    memset(b, 0, sizeof(*b));
    rc = cli_call(cli, "GET", "/v1/gpus", NULL, CLI_TIMEOUT_MS, 0, &status, &ans);
    if (rc != 0)
        return rc;
    json_array_foreach(json_object_get(ans, "gpus"), i, g)
    {
        const char *uuid = json_string_value(json_object_get(g, "uuid"));
        if (json_integer_value(json_object_get(g, "index")) == gpu && uuid != NULL)
            snprintf(b->uuid, sizeof(b->uuid), "%s", uuid);
    }
    sim = json_object_get(ans, "gpusim");
    if (json_is_object(sim)) {
        const char *dir = json_string_value(json_object_get(sim, "libdir"));
        const char *state = json_string_value(json_object_get(sim, "state"));
        if (dir != NULL && state != NULL) {
            b->gpusim_libdir = strdup(dir);
            b->gpusim_state = strdup(state);
        }
    }
    json_decref(ans);
    if (b->uuid[0] == '\0') {
        cli_error("the coordinator does not list GPU %d, which it granted", gpu);
        binding_free(b);
        return CLI_EXIT_COORD;
    }
    if ((b->gpusim_libdir == NULL) != (b->gpusim_state == NULL)) {
        binding_free(b);
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

/* Whether the list (LD_LIBRARY_PATH's ':' or CUDA_VISIBLE_DEVICES's ',') has an entry
 * equal to want, or, with prefix_of set, an entry that is a prefix of want. */
static bool list_has(const char *list, char sep, const char *want, bool prefix_of)
{
    size_t wlen = strlen(want);

    while (list != NULL) {
        const char *end = strchr(list, sep);
        size_t len = end ? (size_t)(end - list) : strlen(list);
        if (len > 0 && (len == wlen || (prefix_of && len < wlen)) &&
            strncasecmp(list, want, len) == 0)
            return true;
        list = end ? end + 1 : NULL;
    }
    return false;
}

/* Warnings for a user setting that the binding overrides or that misses it. */
static void binding_warn(const struct run_binding *b, int gpu)
{
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    const char *state = getenv("GPUSIM_STATE");
    char index[16];

    snprintf(index, sizeof(index), "%d", gpu);
    if (cvd != NULL && !list_has(cvd, ',', index, false) && !list_has(cvd, ',', b->uuid, true))
        cli_error("warning: CUDA_VISIBLE_DEVICES=%s does not name GPU %d (%s), where the lease "
                  "was granted; the command sees that GPU only",
                  cvd, gpu, b->uuid);
    if (b->gpusim_state != NULL && state != NULL && state[0] != '\0' &&
        strcmp(state, b->gpusim_state) != 0)
        cli_error("warning: GPUSIM_STATE=%s is not the coordinator's simulated GPU (%s); the "
                  "command allocates on another one",
                  state, b->gpusim_state);
}

/* Whether environ entry e sets one of the variables the child gets from us. */
static bool replaced_var(const char *e, const struct run_binding *b)
{
    static const char *const ours[] = {"GPUCOORD_LEASE_ID=", "GPUCOORD_GPU=", "GPUCOORD_GPU_UUID=",
                                       "GPUCOORD_URL=", "CUDA_VISIBLE_DEVICES="};

    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
        if (strncmp(e, ours[i], strlen(ours[i])) == 0)
            return true;
    return b->gpusim_libdir != NULL && strncmp(e, "LD_LIBRARY_PATH=", 16) == 0;
}

/* A copy of this process's environment without the variables drop() names, with room
 * for extra more (NULL-terminated); *ret_n is the count copied. NULL: no memory. */
static char **env_copy(bool (*drop)(const char *, const struct run_binding *),
                       const struct run_binding *b, size_t extra, size_t *ret_n)
{
    extern char **environ;
    size_t n = 0, k = 0;
    char **envp;

    while (environ[n] != NULL)
        n++;
    envp = calloc(n + extra + 1, sizeof(*envp));
    if (envp == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (drop(environ[i], b))
            continue;
        envp[k] = strdup(environ[i]);
        if (envp[k] == NULL) {
            free_strv(envp, true);
            return NULL;
        }
        k++;
    }
    *ret_n = k;
    return envp;
}

/* On gpusim: its library folder first in LD_LIBRARY_PATH unless listed already, and
 * GPUSIM_STATE unless the user set one, appended at envp[*k] (room for two). 0, or
 * -1 with envp still NULL-terminated. */
static int env_add_gpusim(char **envp, size_t *k, const struct run_binding *b)
{
    const char *ldpath = getenv("LD_LIBRARY_PATH");
    const char *state = getenv("GPUSIM_STATE");
    int r;

    if (b->gpusim_libdir == NULL)
        return 0;
    if (ldpath == NULL || ldpath[0] == '\0')
        r = asprintf(&envp[*k], "LD_LIBRARY_PATH=%s", b->gpusim_libdir);
    else if (list_has(ldpath, ':', b->gpusim_libdir, false))
        r = asprintf(&envp[*k], "LD_LIBRARY_PATH=%s", ldpath);
    else
        r = asprintf(&envp[*k], "LD_LIBRARY_PATH=%s:%s", b->gpusim_libdir, ldpath);
    if (r < 0) {
        envp[*k] = NULL; /* asprintf leaves it undefined on failure */
        return -1;
    }
    (*k)++;
    if (state == NULL || state[0] == '\0') {
        if (asprintf(&envp[*k], "GPUSIM_STATE=%s", b->gpusim_state) < 0) {
            envp[*k] = NULL;
            return -1;
        }
        (*k)++;
    }
    return 0;
}

/*
 * environ without our variables, plus GPUCOORD_LEASE_ID, GPUCOORD_GPU, GPUCOORD_GPU_UUID,
 * GPUCOORD_URL and CUDA_VISIBLE_DEVICES (the granted GPU's UUID: it names the same
 * physical GPU whatever the user's own CUDA_VISIBLE_DEVICES said). On gpusim, also
 * its library folder first in LD_LIBRARY_PATH unless it is listed already, and
 * GPUSIM_STATE unless the user set one: a command typed in another shell would
 * otherwise find no driver, or a simulated GPU of its own.
 */
static char **build_env(const char *lease_id, int gpu, const char *url, const struct run_binding *b)
{
    size_t k = 0;
    char **envp = env_copy(replaced_var, b, 7, &k);

    if (envp == NULL)
        return NULL;
    if (asprintf(&envp[k], "GPUCOORD_LEASE_ID=%s", lease_id) < 0)
        goto out_free_last;
    k++;
    if (asprintf(&envp[k], "GPUCOORD_GPU=%d", gpu) < 0)
        goto out_free_last;
    k++;
    if (asprintf(&envp[k], "GPUCOORD_GPU_UUID=%s", b->uuid) < 0)
        goto out_free_last;
    k++;
    if (asprintf(&envp[k], "GPUCOORD_URL=%s", url) < 0)
        goto out_free_last;
    k++;
    if (asprintf(&envp[k], "CUDA_VISIBLE_DEVICES=%s", b->uuid) < 0)
        goto out_free_last;
    k++;
    if (env_add_gpusim(envp, &k, b) < 0)
        goto out_free;
    return envp;

out_free_last:
    envp[k] = NULL;
out_free:
    free_strv(envp, true);
    return NULL;
}

/* "/bin/sh PATH ARG1..." for a script without a #! line (what shells do on ENOEXEC). */
static char **build_sh_argv(const char *path, char **cmd)
{
    size_t n = 0;
    char **v;

    while (cmd[n] != NULL)
        n++;
    v = calloc(n + 2, sizeof(*v));
    if (v == NULL)
        return NULL;
    v[0] = (char *)"/bin/sh";
    v[1] = (char *)path;
    for (size_t i = 1; i < n; i++)
        v[i + 1] = cmd[i];
    return v;
}

static void child_write(const char *s)
{
    ssize_t ignored = write(STDERR_FILENO, s, strlen(s));
    (void)ignored;
}

/* In the child: only async-signal-safe calls from here on. */
static void __attribute__((noreturn)) child_exec(const struct run_exec *x)
{
    struct sigaction dfl;
    int err;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != x->parent)
        _exit(128 + SIGKILL); /* the CLI died before the line above took effect */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGHUP, &dfl, NULL);
    for (int fd = 3; fd < RUN_FD_SCAN_MAX; fd++)
        if (!(inherited_fds[fd / 8] & (1u << (fd % 8))))
            close(fd);
    sigprocmask(SIG_SETMASK, &x->old_mask, NULL);
    execve(x->path, x->argv, x->envp);
    err = errno;
    if (err == ENOEXEC && x->sh_argv != NULL) {
        execve("/bin/sh", x->sh_argv, x->envp);
        err = errno;
    }
    child_write("gpucoord: cannot execute '");
    child_write(x->path);
    child_write("': ");
    child_write(strerrordesc_np(err) ? strerrordesc_np(err) : "error");
    child_write("\n");
    _exit(err == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_NOEXEC);
}

/* Waits for the child, warning once if the lease is lost meanwhile. Returns the exit code. */
static int wait_child(pid_t pid, gpucoord_lease *lease)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    bool warned = false;
    int status = 0;

    for (;;) {
        pid_t r;
        if (pidfd >= 0) {
            struct pollfd p = {.fd = pidfd, .events = POLLIN};
            int n = poll(&p, 1, 1000);
            if (!warned && lease != NULL && gpucoord_lease_lost(lease)) {
                cli_error("warning: lease %s was lost (expired or ended by the coordinator) "
                          "while the command runs",
                          gpucoord_lease_id(lease));
                warned = true;
            }
            if (n < 0 && errno != EINTR) {
                close(pidfd);
                pidfd = -1;
            }
            if (n <= 0)
                continue;
        }
        r = waitpid(pid, &status, pidfd >= 0 ? WNOHANG : 0);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            cli_error("cannot wait for the command: %s", strerror(errno));
            status = -1;
            break;
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    if (status == -1)
        return CLI_EXIT_FAILURE;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return CLI_EXIT_FAILURE;
}

/* Where libgpucoord-intercept.so is: $GPUCOORD_INTERCEPT_LIB, else beside this
 * program (the build folder), else in its ../lib, else where `make install` put it,
 * else left to the loader's search. */
static void intercept_lib_path(char *out, size_t len)
{
    const char *env = getenv("GPUCOORD_INTERCEPT_LIB");
    char exe[RUN_PATH_MAX - 64]; /* room for the file name after it */
    ssize_t n;
    char *slash;

    if (env != NULL && env[0] != '\0') {
        snprintf(out, len, "%s", env);
        return;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(out, len, "%s/libgpucoord-intercept.so", exe);
            if (access(out, R_OK) == 0)
                return;
            snprintf(out, len, "%s/../lib/libgpucoord-intercept.so", exe);
            if (access(out, R_OK) == 0)
                return;
        }
    }
    snprintf(out, len, "%s", GPUCOORD_INTERCEPT_INSTALLED);
    if (access(out, R_OK) == 0)
        return;
    snprintf(out, len, "libgpucoord-intercept.so");
}

/* Variables build_auto_env sets: the user's own values are replaced. */
static bool auto_var(const char *e, const struct run_binding *b)
{
    static const char *const ours[] = {"LD_PRELOAD=",    "GPUCOORD_URL=",      "GPUCOORD_HOLDER=",
                                       "GPUCOORD_NEED=", "GPUCOORD_PRIORITY=", "GPUCOORD_WAIT_S="};

    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
        if (strncmp(e, ours[i], strlen(ours[i])) == 0)
            return true;
    return b->gpusim_libdir != NULL && strncmp(e, "LD_LIBRARY_PATH=", 16) == 0;
}

/*
 * --auto: environ with the interposer added to LD_PRELOAD (after the user's own), GPUCOORD_URL,
 * GPUCOORD_HOLDER and GPUCOORD_WAIT_S, GPUCOORD_NEED and GPUCOORD_PRIORITY when given; on gpusim
 * its folder and state as build_env adds. No CUDA_VISIBLE_DEVICES: the command uses the GPUs it
 * would use, each leased.
 */
static char **build_auto_env(const struct run_args *a, const char *url, const struct run_binding *b)
{
    const char *preload = getenv("LD_PRELOAD");
    char lib[RUN_PATH_MAX];
    size_t k = 0;
    char **envp;
    int r = 0;

    intercept_lib_path(lib, sizeof(lib));
    envp = env_copy(auto_var, b, 9, &k);
    if (envp == NULL)
        return NULL;
    /* After the user's own preloads: a sanitizer runtime must stay first, and an
     * interposer the user chose keeps its place. */
    if (preload != NULL && preload[0] != '\0' && !list_has(preload, ' ', lib, false))
        r = asprintf(&envp[k], "LD_PRELOAD=%s %s", preload, lib);
    else
        r = asprintf(&envp[k], "LD_PRELOAD=%s", lib);
    if (r < 0)
        goto out_free_last;
    k++;
    if (asprintf(&envp[k++], "GPUCOORD_URL=%s", url) < 0 ||
        asprintf(&envp[k++], "GPUCOORD_HOLDER=%s", a->holder) < 0 ||
        asprintf(&envp[k++], "GPUCOORD_WAIT_S=%g", a->wait_s) < 0)
        goto out_free_prev;
    if (a->need_bytes > 0 &&
        asprintf(&envp[k++], "GPUCOORD_NEED=%llu", (unsigned long long)a->need_bytes) < 0)
        goto out_free_prev;
    if (a->priority != 0 && asprintf(&envp[k++], "GPUCOORD_PRIORITY=%ld", a->priority) < 0)
        goto out_free_prev;
    if (env_add_gpusim(envp, &k, b) < 0)
        goto out_free;
    return envp;

out_free_prev:
    k--; /* the failed asprintf left that slot undefined */
out_free_last:
    envp[k] = NULL;
out_free:
    free_strv(envp, true);
    return NULL;
}

static int acquire(struct cli *cli, const struct run_args *a, gpucoord_lease **ret)
{
    struct gpucoord_lease_request req;
    int rc;

    rc = cli_connect(cli);
    if (rc != 0)
        return rc;
    gpucoord_lease_request_init(&req);
    req.holder = a->holder;
    req.bytes = a->need_bytes;
    req.gpu = a->gpu;
    /* The CLI's own pid: the lease ends by itself if the CLI dies. */
    req.pid = (int)getpid();
    req.priority = (int)a->priority;
    req.ttl_s = a->ttl_s;
    req.wait_s = a->wait_s;
    req.heartbeat = 1;
    rc = gpucoord_lease_acquire(cli->client, &req, ret);
    if (rc == 0)
        return 0;
    {
        const char *msg = gpucoord_client_message(cli->client);
        int code = cli_exit_for(rc, true);
        if (rc == GPUCOORD_ENOTFOUND)
            code = CLI_EXIT_REFUSED; /* it ended (expired) while it waited */
        if (rc == GPUCOORD_ECONNECT)
            cli_error("%s", msg[0] ? msg : "cannot reach the coordinator");
        else if (code == CLI_EXIT_REFUSED)
            cli_error("lease not granted, command not run: %s",
                      msg[0] ? msg : gpucoord_strerror(rc));
        else
            cli_error("lease request failed, command not run: %s",
                      msg[0] ? msg : gpucoord_strerror(rc));
        return code;
    }
}

int cmd_run(struct cli *cli, int argc, char **argv)
{
    struct run_args a;
    struct run_exec x;
    struct sigaction sa;
    sigset_t block;
    gpucoord_lease *lease = NULL;
    struct run_binding binding = {0};
    char size[32];
    pid_t pid;
    int rc, code;

    record_inherited_fds();
    rc = parse_args(argc, argv, cli, &a);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    memset(&x, 0, sizeof(x));
    rc = resolve_command(a.cmd[0], x.path, sizeof(x.path));
    if (rc != 0)
        return rc;

    if (a.autolease) {
        /* Only for gpusim's folder: a coordinator out of reach is the interposer's
         * to report (it runs the command uncoordinated, or fails closed). */
        if (fetch_binding(cli, 0, &binding) != 0)
            memset(&binding, 0, sizeof(binding));
        x.envp = build_auto_env(&a, cli_url(cli), &binding);
    } else {
        rc = acquire(cli, &a, &lease);
        if (rc != 0)
            return rc;
        if (a.verbose) {
            const char *ev = gpucoord_lease_evicted(lease);
            cli_error("lease %s granted: %s on GPU %d after %.2fs%s%s", gpucoord_lease_id(lease),
                      cli_size(gpucoord_lease_bytes(lease), size, sizeof(size)),
                      gpucoord_lease_gpu(lease), gpucoord_lease_waited_s(lease),
                      ev[0] ? ", evicted " : "", ev);
        }

        code = fetch_binding(cli, gpucoord_lease_gpu(lease), &binding);
        if (code != 0) {
            cli_error("command not run: cannot bind it to GPU %d", gpucoord_lease_gpu(lease));
            goto out_release;
        }
        binding_warn(&binding, gpucoord_lease_gpu(lease));
        x.envp =
            build_env(gpucoord_lease_id(lease), gpucoord_lease_gpu(lease), cli_url(cli), &binding);
    }
    x.argv = a.cmd;
    x.sh_argv = build_sh_argv(x.path, a.cmd);
    x.parent = getpid();
    if (x.envp == NULL || x.sh_argv == NULL) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto out_release;
    }

    /* Signals: forwarded to the child by a handler (any thread may take them);
     * blocked in this thread across fork() so none is lost in between. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &x.old_mask);
    if (pending_signal != 0) {
        code = 128 + pending_signal; /* interrupted before the command started */
        cli_error("interrupted; command not run");
        sigprocmask(SIG_SETMASK, &x.old_mask, NULL);
        goto out_release;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0)
        child_exec(&x);
    if (pid < 0) {
        cli_error("cannot start the command: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &x.old_mask, NULL);
        code = CLI_EXIT_FAILURE;
        goto out_release;
    }
    child_pid = pid;
    if (pending_signal != 0)
        kill(pid, pending_signal); /* taken by another thread just before child_pid was set */
    sigprocmask(SIG_SETMASK, &x.old_mask, NULL);

    code = wait_child(pid, lease);

out_release:
    if (lease != NULL) {
        char id[64];
        snprintf(id, sizeof(id), "%s", gpucoord_lease_id(lease));
        rc = gpucoord_lease_release(lease);
        if (rc < 0 && rc != GPUCOORD_ENOTFOUND)
            cli_error("warning: could not release lease %s (%s); the coordinator ends it "
                      "when this process exits",
                      id, gpucoord_strerror(rc));
        else if (a.verbose)
            cli_error("lease %s released", id);
    }
    free_strv(x.envp, true);
    free(x.sh_argv);
    binding_free(&binding);
    return code;
}
