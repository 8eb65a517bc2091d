/* lab shim: runs a directory of hooks with the autoupdater's own run_dir()
 * (freifunk-gluon/packages admin/autoupdater/src/util.c, compiled beside
 * this file by build.sh): the autoupdater itself needs a firmware server
 * and libuclient, which the lab has not; its hooks are run as it runs them. */
#include "util.h"

#include <stdio.h>

int main(int argc, char *argv[]) {
	if (argc != 2) {
		fputs("usage: autoupdater-run-dir DIR\n", stderr);
		return 2;
	}
	run_dir(argv[1]);
	return 0;
}
