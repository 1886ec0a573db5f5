#include "bridge.h"
void *br_queue_export(void *arg) { br_link_fail(arg, "queues not yet"); return NULL; }
void *br_queue_import(void *arg) { br_link_fail(arg, "queues not yet"); return NULL; }
