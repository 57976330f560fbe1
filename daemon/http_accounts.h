/* http_accounts.h: handlers of the accounts API (R2, API.md "Accounts"). */
#ifndef CREDITD_HTTP_ACCOUNTS_H
#define CREDITD_HTTP_ACCOUNTS_H

#include "http.h"

void http_accounts_create(struct http_req *r);
void http_accounts_list(struct http_req *r);
void http_accounts_get(struct http_req *r);
void http_accounts_patch(struct http_req *r);
void http_accounts_suspend(struct http_req *r);
void http_accounts_unsuspend(struct http_req *r);
void http_accounts_history(struct http_req *r);

#endif
