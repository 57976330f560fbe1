/*
 * fuzz_config.c: libFuzzer target for common/config (STYLE.md "Tests").
 *
 * Any input must either parse, or fail with a one-line message naming the
 * file; never crash, leak or read out of bounds. A parsed config must be
 * reload-compatible with itself and find each of its own tokens.
 * Seeds: tests/fuzz/corpus/config/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct config *cfg, *cfg2;

	cfg = config_parse("fuzz.conf", (const char *)data, size, NULL, err, sizeof(err));
	if (cfg == NULL) {
		if (strncmp(err, "fuzz.conf", 9) != 0 || strchr(err, '\n') != NULL)
			abort();
		/* the override may satisfy database.conninfo; must not crash either way */
		cfg2 = config_parse("fuzz.conf", (const char *)data, size, "dbname=fuzz", err,
		                    sizeof(err));
		config_free(cfg2);
		return 0;
	}
	if (!config_reload_compatible(cfg, cfg, err, sizeof(err)))
		abort();
	for (size_t i = 0; i < cfg->ntokens; i++) {
		if (config_find_token(cfg, cfg->tokens[i].sha256) != &cfg->tokens[i])
			abort();
		if (cfg->tokens[i].scopes == 0 || (cfg->tokens[i].scopes & ~(unsigned)SCOPE_ALL))
			abort();
	}
	cfg2 = config_parse("fuzz.conf", (const char *)data, size, "dbname=fuzz", err, sizeof(err));
	if (cfg2 == NULL)
		abort();
	if (!config_reload_compatible(cfg2, cfg2, err, sizeof(err)))
		abort();
	config_free(cfg2);
	config_free(cfg);
	return 0;
}
