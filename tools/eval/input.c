/* input.c: captures and flow streams as flow records (see input.h): the
 * first bytes tell the kind; captures are handed to a pcap2flow child whose
 * output we read through a pipe. */
#define _GNU_SOURCE /* pipe2 */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "packet.h"

extern char **environ;

const char *const input_format_names[] = { "pcap", "pcapng", "stream" };

#define HEAD 4
#define FEED_CHUNK 65536

/* Reads up to HEAD bytes (fewer only at the end of the input). */
static size_t sniff(int fd, const char *name, uint8_t *head)
{
	size_t got = 0;
	while (got < HEAD) {
		ssize_t n = read(fd, head + got, HEAD - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err(EX_IOERR, "%s", name);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* The pcap magic numbers (either byte order, micro- or nanoseconds) and
 * pcapng's section header block type. */
static int capture_format(const uint8_t *h, size_t n, enum input_format *fmt)
{
	static const uint8_t magic[][HEAD] = {
		{ 0xa1, 0xb2, 0xc3, 0xd4 }, { 0xd4, 0xc3, 0xb2, 0xa1 },
		{ 0xa1, 0xb2, 0x3c, 0x4d }, { 0x4d, 0x3c, 0xb2, 0xa1 },
	};
	static const uint8_t pcapng[HEAD] = { 0x0a, 0x0d, 0x0d, 0x0a };
	if (n < HEAD)
		return 0;
	for (size_t i = 0; i < sizeof magic / sizeof magic[0]; i++)
		if (memcmp(h, magic[i], HEAD) == 0) {
			*fmt = INPUT_PCAP;
			return 1;
		}
	if (memcmp(h, pcapng, HEAD) == 0) {
		*fmt = INPUT_PCAPNG;
		return 1;
	}
	return 0;
}

/* A tgpt stream starts with a msgpack map (fixmap, map 16, map 32). */
static int is_stream_start(uint8_t b)
{
	return (b & 0xf0) == 0x80 || b == 0xde || b == 0xdf;
}

/* ------------------------------------------------------------ pcap2flow */

/* pcap2flow in the directory of the running program (bin/ next to bin/), or
 * NULL to look on PATH. */
static char *sibling_pcap2flow(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return NULL;
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	slash[1] = 0;
	size_t len = strlen(self) + sizeof "pcap2flow";
	char *path = xmalloc(len);
	snprintf(path, len, "%spcap2flow", self);
	if (access(path, X_OK) == 0)
		return path;
	free(path);
	return NULL;
}

/* A copy of this process that writes the sniffed head, then the rest of
 * stdin, into fd: a pipe stdin cannot be rewound for pcap2flow. */
static pid_t start_feeder(int fd, const uint8_t *head, size_t len, int other)
{
	pid_t pid = fork();
	if (pid < 0)
		err(EX_OSERR, "fork");
	if (pid > 0)
		return pid;
	signal(SIGPIPE, SIG_IGN);
	close(other);
	static uint8_t buf[FEED_CHUNK];
	memcpy(buf, head, len);
	size_t have = len;
	for (;;) {
		for (size_t off = 0; off < have;) {
			ssize_t w = write(fd, buf + off, have - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				_exit(0); /* pcap2flow is gone: its status says why */
			off += (size_t)w;
		}
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR) {
			have = 0;
			continue;
		}
		if (n < 0) {
			warn("<stdin>");
			_exit(EX_IOERR);
		}
		if (n == 0)
			_exit(0);
		have = (size_t)n;
	}
}

/* Starts pcap2flow on the capture; its flow records come out of in->r.
 * stdin_fd is what pcap2flow reads as stdin when the capture is "-". */
static void start_pcap2flow(struct input *in, double idle_s, int stdin_fd)
{
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		err(EX_OSERR, "pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	if (stdin_fd >= 0 && stdin_fd != STDIN_FILENO)
		posix_spawn_file_actions_adddup2(&fa, stdin_fd, STDIN_FILENO);

	char idle[32];
	snprintf(idle, sizeof idle, "%.9g", idle_s);
	char *argv[] = { "pcap2flow", "--all", "-q", "-t", idle, "--", (char *)in->path, NULL };
	char *sibling = sibling_pcap2flow();
	int rc = sibling ? posix_spawn(&in->child, sibling, &fa, NULL, argv, environ)
			 : posix_spawnp(&in->child, "pcap2flow", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	free(sibling);
	if (rc == ENOENT)
		errx(EX_UNAVAILABLE, "%s: reading a capture needs pcap2flow, found neither next to "
		     "this program nor on PATH", in->name);
	if (rc != 0) {
		errno = rc;
		err(EX_OSERR, "pcap2flow");
	}
	close(out[1]);
	rec_open_fd(&in->r, out[0], in->name);
}

/* Opens a capture on stdin: pcap2flow reads stdin itself, rewound past our
 * sniffing when it is a file, else fed by a copy of us. */
static void open_stdin_capture(struct input *in, double idle_s, const uint8_t *head, size_t n)
{
	if (lseek(STDIN_FILENO, -(off_t)n, SEEK_CUR) >= 0) {
		start_pcap2flow(in, idle_s, STDIN_FILENO);
		return;
	}
	int feed[2];
	if (pipe2(feed, O_CLOEXEC) < 0)
		err(EX_OSERR, "pipe");
	in->feeder = start_feeder(feed[1], head, n, feed[0]);
	close(feed[1]);
	start_pcap2flow(in, idle_s, feed[0]);
	close(feed[0]);
}

/* ------------------------------------------------------------ the input */

void input_open(struct input *in, const char *path, double idle_s)
{
	memset(in, 0, sizeof *in);
	in->path = path;
	int is_stdin = strcmp(path, "-") == 0;
	in->name = is_stdin ? "<stdin>" : path;
	int fd = STDIN_FILENO;
	if (!is_stdin && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		err(EX_NOINPUT, "%s", path);
	uint8_t head[HEAD];
	size_t n = sniff(fd, in->name, head);
	in->open = 1;
	if (capture_format(head, n, &in->format)) {
		if (is_stdin) {
			open_stdin_capture(in, idle_s, head, n);
		} else {
			close(fd);
			start_pcap2flow(in, idle_s, -1);
		}
		return;
	}
	if (n == 0)
		errx(EX_DATAERR, "%s: empty: neither a capture nor a tgpt stream", in->name);
	if (!is_stream_start(head[0]))
		errx(EX_DATAERR, "%s: neither a capture (pcap, pcapng) nor a tgpt stream "
		     "(first bytes %02x%02x%02x%02x)", in->name, head[0], n > 1 ? head[1] : 0,
		     n > 2 ? head[2] : 0, n > 3 ? head[3] : 0);
	in->format = INPUT_STREAM;
	rec_open_fd(&in->r, fd, in->name);
	/* the sniffed bytes go first into the unpacker's buffer */
	if (!msgpack_unpacker_reserve_buffer(&in->r.mp.unpacker, n))
		errx(EX_OSERR, "out of memory");
	memcpy(msgpack_unpacker_buffer(&in->r.mp.unpacker), head, n);
	msgpack_unpacker_buffer_consumed(&in->r.mp.unpacker, n);
}

/* Waits for a child; returns its exit status, 128 + signal when killed. */
static int reap(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			err(EX_OSERR, "waitpid");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* After pcap2flow's output ended: its exit status decides. It has named the
 * capture and the packet already; we say what it means for us. */
static void check_children(struct input *in)
{
	int child = in->child ? reap(in->child) : 0;
	/* a feeder can wait on stdin long after a failed pcap2flow stopped */
	if (child != 0 && in->feeder)
		kill(in->feeder, SIGTERM);
	int feeder = in->feeder ? reap(in->feeder) : 0;
	in->feeder = in->child = 0;
	if (child == EX_DATAERR)
		errx(EX_DATAERR, "%s: damaged capture (pcap2flow's message above)", in->name);
	if (child > 128)
		errx(EX_SOFTWARE, "%s: pcap2flow killed by signal %d", in->name, child - 128);
	if (child != 0)
		errx(child >= EX__BASE && child <= EX__MAX ? child : EX_SOFTWARE,
		     "%s: pcap2flow failed (exit %d)", in->name, child);
	if (feeder != 0)
		errx(EX_IOERR, "<stdin>: reading the capture failed");
}

static void linktype_set_add(struct linktype_set *s, uint32_t lt)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->lt[i] == lt)
			return;
	if (s->n < INPUT_LINKTYPES)
		s->lt[s->n++] = lt;
}

/* A flow from its packets' IP headers on, as raw IP: what the link layer
 * added is gone from bytes and lengths; a packet without an IP header is
 * left out (counted), and the counts of the flow are its packets'. */
static void to_ip_layer(struct input *in, struct flow_rec *f)
{
	size_t kept = 0;
	memset(f->packets, 0, sizeof f->packets);
	memset(f->bytes, 0, sizeof f->bytes);
	for (size_t i = 0; i < f->n_packets; i++) {
		struct packet p = f->pkt[i];
		struct pkt_info pi;
		if (!pkt_decode(f->linktype, p.data, p.caplen, &pi) || pi.l3_off < 0) {
			in->not_ip++;
			continue;
		}
		uint32_t l3 = (uint32_t)pi.l3_off;
		p.data += l3;
		p.caplen -= l3;
		p.wirelen = p.wirelen > l3 ? p.wirelen - l3 : 0;
		f->packets[p.dir & 1]++;
		f->bytes[p.dir & 1] += p.wirelen;
		f->pkt[kept++] = p;
	}
	f->n_packets = kept;
	f->linktype = LT_RAW;
}

const struct flow_rec *input_next(struct input *in)
{
	int rc = rec_next(&in->r, REC_FLOW);
	if (rc == REC_FLOW) {
		linktype_set_add(&in->linktypes, in->r.flow.linktype);
		if (in->ip_layer)
			to_ip_layer(in, &in->r.flow);
		return &in->r.flow;
	}
	char why[sizeof in->r.error];
	snprintf(why, sizeof why, "%s", rc < 0 ? in->r.error : "");
	rec_close(&in->r);
	in->open = 0;
	check_children(in);
	if (rc < 0)
		errx(EX_DATAERR, "%s", why);
	return NULL;
}

void input_close(struct input *in)
{
	if (in->open)
		rec_close(&in->r);
	in->open = 0;
	/* a pcap2flow still writing sees the pipe closed and stops; the
	 * feeder may be waiting on stdin */
	if (in->child)
		reap(in->child);
	if (in->feeder) {
		kill(in->feeder, SIGTERM);
		reap(in->feeder);
	}
	in->feeder = in->child = 0;
}

/* "1 (EN10MB), 101 (RAW)": a set's link types, named. */
static void describe_linktypes(char *buf, size_t len, const struct linktype_set *s)
{
	size_t at = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < s->n && at < len; i++) {
		const char *name = pkt_linktype_name(s->lt[i]);
		at += (size_t)snprintf(buf + at, len - at, "%s%" PRIu32 "%s%s%s", i ? ", " : "",
				       s->lt[i], name ? " (" : "", name ? name : "", name ? ")" : "");
	}
}

static int linktype_sets_equal(const struct linktype_set *a, const struct linktype_set *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		size_t j = 0;
		while (j < b->n && b->lt[j] != a->lt[i])
			j++;
		if (j == b->n)
			return 0;
	}
	return 1;
}

void linktypes_warn(const struct linktype_set *a, const char *na, const struct linktype_set *b,
		    const char *nb, int ip_layer)
{
	if (ip_layer || a->n == 0 || b->n == 0 || linktype_sets_equal(a, b))
		return;
	char da[160], db[160];
	describe_linktypes(da, sizeof da, a);
	describe_linktypes(db, sizeof db, b);
	warnx("the two sides differ in link type: %s has %s, %s has %s; their packet lengths and "
	      "bytes differ by the link headers too (--ip-layer compares from the IP header on)",
	      na, da, nb, db);
}
