/* The release number, in this one place: popgate --version and
 * popgate-admin --version print it, and the Makefile reads it (make version). */
#ifndef POPGATE_VERSION_H
#define POPGATE_VERSION_H

#define POPGATE_VERSION "0.1.0"

#endif
