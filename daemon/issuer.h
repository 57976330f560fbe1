/* issuer.h: the configured invoice issuer ([issuer], R5.7) in the database.
 *
 * sql/0034 keeps the issuer in the one-row table invoice_issuer, and a
 * BEFORE INSERT trigger copies it into each new invoice: an issued invoice
 * keeps it (R5.5). This module writes the running configuration's [issuer]
 * there (non-blocking, parameterised, only when it differs from the row):
 * at start, before the invoice jobs start (service.c waits for
 * issuer_start's callback), and after a reload that changed it. With several
 * daemons (R9.2) the last write wins: the daemon started or reloaded last. */
#ifndef CREDITD_ISSUER_H
#define CREDITD_ISSUER_H

#include <stdbool.h>

struct app;
struct issuer;

struct issuer *issuer_new(struct app *app);
void issuer_free(struct issuer *is);
/* Writes the configured issuer (the database became usable); done(arg) is
 * called once, when the first write has committed. Retries with backoff
 * until it has. */
void issuer_start(struct issuer *is, void (*done)(void *arg), void *arg);
/* app->cfg was swapped (SIGHUP): writes the issuer again if it changed. */
void issuer_config_changed(struct issuer *is);
/* True once the configured issuer has been written after start. */
bool issuer_written(const struct issuer *is);

#endif
