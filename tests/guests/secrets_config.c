// secrets.h with wasi:config/store: built as a component only (world in secrets_config.wit).
// keep-guest: reactor
#define WITH_CONFIG 1
#include "secrets.h"
