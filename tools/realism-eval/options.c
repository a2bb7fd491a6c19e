/* options.c: realism-eval's command line: the usage text and the options
 * of both modes, checked against each other. */
#include <getopt.h>
#include <stdint.h>
#include <string.h>

#include "boost.h"
#include "realism.h"

const char usage[] =
	"usage: realism-eval [-q] [-j N] [--json] [--folds K] [--packets N] [--ports]\n"
	"                    [--seed N] [options] real generated\n"
	"       realism-eval --baseline [-q] [-j N] [--json] [-L labels.tsv] [--split capture|time]\n"
	"                    [--test-share X | --split-file split.tsv] [options] [LABEL=]file ...\n"
	"Compares generated traffic with real traffic (captures or flow streams, \"-\"\n"
	"for stdin): validity of the generated packets and TCP flows, a discriminator\n"
	"(XGBoost on one feature vector per flow, macro-F1 over stratified k-fold\n"
	"cross-validation; 0.5 = indistinguishable) and jsdiv's mean divergences.\n"
	"      --folds K            cross-validation folds (5)\n"
	"      --packets N          packets per flow in the feature vector (20)\n"
	"      --ports              put the first packet's ports in the feature vector\n"
	"      --seed N             seed of subsampling, folds and XGBoost (1)\n"
	"  -r, --rounds N           boosting rounds (100)\n"
	"  -d, --depth N            tree depth (6)\n"
	"  -j, --threads N          XGBoost threads (1; results depend on it)\n"
	"  -t, --idle-timeout SECS  captures: pcap2flow's idle timeout (120)\n"
	"      --ip-layer           packets from their IP header on (sides of different\n"
	"                           link types); frames without one left out\n"
	"      --tokens FILE        the token records the generated capture was written\n"
	"                           from (tok2pcap): the share of them that come back as\n"
	"                           exactly one flow each\n"
	"      --json               one JSON document instead of the report\n"
	"  -q, --quiet              no progress on the terminal\n"
	"  -h, --help               this text\n"
	"  -V, --version            version and libraries\n"
	"Baseline (supervised flow classification on labelled flows):\n"
	"      --baseline           files are LABEL=FILE, or flow streams with labels\n"
	"  -L, --labels FILE        more inputs: lines FILE<TAB>LABEL (relative paths\n"
	"                           from FILE's directory)\n"
	"      --split MODE         capture: no capture on both sides (default);\n"
	"                           time: each capture's latest flows are the test set\n"
	"      --test-share X       share of flows (captures) to test (0.3)\n"
	"      --split-file FILE    the flows and split of tokshard's split.tsv instead:\n"
	"                           only the flows it lists (by source and id), its\n"
	"                           train and test sides; its val flows are left out\n"
	"      --features SET       stats: the feature vector above (default); bytes:\n"
	"                           nPrint-style, the first bytes of the first packets,\n"
	"                           masked as tgpt's input, and their time intervals\n"
	"      --first-packets K    bytes: packets per flow (8)\n"
	"      --first-bytes N      bytes: bytes per packet (96)\n"
	"Definitions: realism-eval(1).\n";

int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "baseline", no_argument, NULL, OPT_BASELINE },
		{ "depth", required_argument, NULL, 'd' },
		{ "features", required_argument, NULL, OPT_FEATURES },
		{ "first-bytes", required_argument, NULL, OPT_FIRST_BYTES },
		{ "first-packets", required_argument, NULL, OPT_FIRST_PACKETS },
		{ "folds", required_argument, NULL, OPT_FOLDS },
		{ "help", no_argument, NULL, 'h' },
		{ "idle-timeout", required_argument, NULL, 't' },
		{ "ip-layer", no_argument, NULL, OPT_IP_LAYER },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "labels", required_argument, NULL, 'L' },
		{ "packets", required_argument, NULL, OPT_PACKETS },
		{ "ports", no_argument, NULL, OPT_PORTS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "split", required_argument, NULL, OPT_SPLIT },
		{ "split-file", required_argument, NULL, OPT_SPLIT_FILE },
		{ "test-share", required_argument, NULL, OPT_TEST_SHARE },
		{ "threads", required_argument, NULL, 'j' },
		{ "tokens", required_argument, NULL, OPT_TOKENS },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct options){ .folds = 5, .rounds = 100, .depth = 6, .threads = 1, .packets = 20,
				.seed = 1, .idle = 120, .test_share = 0.3, .eta = 0.3,
				.first_packets = 8, .first_bytes = 96, .split = SPLIT_CAPTURE };
	int ch, own_split = 0;

	while ((ch = cli_getopt(argc, argv, "d:hj:L:qr:t:V", longopts, usage)) != -1) {
		switch (ch) {
		case OPT_BASELINE:
			o->baseline = 1;
			break;
		case 'd':
			o->depth = (int)opt_u64(usage, "--depth", optarg, 1, 20);
			break;
		case 'h':
			cli_help(usage);
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_FOLDS:
			o->folds = (int)opt_u64(usage, "--folds", optarg, 2, 100);
			break;
		case 'L':
			o->labels = optarg;
			break;
		case OPT_PACKETS:
			o->packets = (unsigned)opt_u64(usage, "--packets", optarg, 1, 1000);
			break;
		case OPT_PORTS:
			o->ports = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'r':
			o->rounds = (int)opt_u64(usage, "--rounds", optarg, 1, 100000);
			break;
		case OPT_SEED:
			o->seed = opt_u64(usage, "--seed", optarg, 0, UINT64_MAX);
			break;
		case 't':
			o->idle = opt_double(usage, "--idle-timeout", optarg, 0, 1e9);
			break;
		case 'j':
			o->threads = (int)opt_u64(usage, "--threads", optarg, 1, 1024);
			break;
		case 'V': {
			const char *const libs[] = { boost_version(), NULL };
			cli_version(libs);
		}
		case OPT_SPLIT:
			if (strcmp(optarg, "capture") == 0)
				o->split = SPLIT_CAPTURE;
			else if (strcmp(optarg, "time") == 0)
				o->split = SPLIT_TIME;
			else
				cli_usage_error(usage, "--split: capture or time, not '%s'", optarg);
			own_split = 1;
			break;
		case OPT_TEST_SHARE:
			o->test_share = opt_double(usage, "--test-share", optarg, 0.01, 0.99);
			own_split = 1;
			break;
		case OPT_SPLIT_FILE:
			o->split_file = optarg;
			break;
		case OPT_IP_LAYER:
			o->ip_layer = 1;
			break;
		case OPT_TOKENS:
			o->tokens = optarg;
			break;
		case OPT_FEATURES:
			if (strcmp(optarg, "stats") == 0 || strcmp(optarg, "bytes") == 0)
				o->byte_features = strcmp(optarg, "bytes") == 0;
			else
				cli_usage_error(usage, "--features: stats or bytes, not '%s'", optarg);
			break;
		case OPT_FIRST_PACKETS:
			o->first_packets = (unsigned)opt_u64(usage, "--first-packets", optarg, 1, 1000);
			break;
		case OPT_FIRST_BYTES:
			o->first_bytes = (unsigned)opt_u64(usage, "--first-bytes", optarg, 1, 65535);
			break;
		default:
			cli_usage_error(usage, "unknown option");
		}
	}
	if (o->split_file && own_split)
		cli_usage_error(usage, "--split-file is the split: no --split or --test-share with it");
	if (o->split_file && !o->baseline)
		cli_usage_error(usage, "--split-file goes with --baseline");
	if (o->split_file)
		o->split = SPLIT_FILE;
	if (o->tokens && o->baseline)
		cli_usage_error(usage, "--tokens goes with a real and a generated input, not --baseline");
	if (o->tokens && o->ip_layer)
		cli_usage_error(usage, "--tokens matches whole frames: not with --ip-layer");
	if (o->labels && !o->baseline)
		cli_usage_error(usage, "--labels goes with --baseline");
	if (o->byte_features && !o->baseline)
		cli_usage_error(usage, "--features bytes goes with --baseline");
	return optind;
}
