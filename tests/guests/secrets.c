// Prints a digest of each secret it is pointed at (see secrets.h).
#include "secrets.h"
