/*
 * CSGI umbrella header: include this one.
 */
#ifndef CSGI_CSGI_H
#define CSGI_CSGI_H

#include "version.h"
#include "errors.h"
#include "plugin.h"

#endif /* CSGI_CSGI_H */
