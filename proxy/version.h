/* The release number. It lives in the file VERSION at the top of the tree
 * alone: the Makefile passes it to the two files that print it (popgate
 * --version, popgate-admin --version), `make version` prints it, and the
 * Debian package's version must match it (make deb checks). */
#ifndef POPGATE_VERSION_H
#define POPGATE_VERSION_H

#ifndef POPGATE_VERSION
#error "POPGATE_VERSION comes from the file VERSION: build with make"
#endif

#endif
