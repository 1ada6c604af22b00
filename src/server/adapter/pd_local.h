/* pusherd: the single-node scale-out adapter (nothing remote). */
#ifndef PD_LOCAL_H
#define PD_LOCAL_H

#include "core/pd_core.h"

/* Stateless: pass it to pd_core_init with user_data NULL. */
extern const pd_adapter pd_adapter_local;

#endif
