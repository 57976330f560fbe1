/* account_view.h: the API's account object (API.md) from account_view rows. */
#ifndef CREDITD_ACCOUNT_VIEW_H
#define CREDITD_ACCOUNT_VIEW_H

#include <jansson.h>
#include <libpq-fe.h>

/* Column list to select from account_view. */
#define ACCOUNT_VIEW_SELECT "SELECT * FROM account_view "

json_t *account_view_json(const PGresult *res, int row);

#endif
