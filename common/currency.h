/* currency.h: ISO 4217 currency codes and their minor-unit exponents (SPEC R1.3). */
#ifndef CREDITD_CURRENCY_H
#define CREDITD_CURRENCY_H

#include <stdbool.h>
#include <stddef.h>

/* Minor-unit decimals of an active ISO 4217 currency (EUR 2, JPY 0, KWD 3,
 * CLF 4 ...), or -1 if code is not one. code must be exactly 3 uppercase ASCII
 * letters followed by NUL ("eur", "EURO", " EUR" -> -1). Codes whose ISO minor
 * unit is "N.A." (precious metals XAU/XAG/XPT/XPD, XDR, XSU, XUA, bond-market
 * units XBA..XBD, XTS, XXX) cannot carry an invoice and are rejected (-1);
 * withdrawn codes (HRK ...) are rejected too. */
int currency_exponent(const char *code);

/* currency_exponent(code) >= 0. */
bool currency_valid(const char *code);

/* Table access for tests and listings: number of codes, and the i-th code
 * (sorted ascending) or NULL if i >= currency_count(). */
size_t currency_count(void);
const char *currency_code_at(size_t i);

#endif
