/* chain_head.c -- the chain head as of the last commit, for copies kept
 * outside the index.
 *
 * The hash chain (chain.c) makes every stored entry depend on all before it,
 * but a chain kept only inside the index can be rewritten whole by whoever
 * can write the file. The daemon therefore publishes the head -- the row
 * count and the chain value after it, the form `verify --chain-head
 * HASH@COUNT` takes -- to its log and a Redis stream; this is the read it
 * needs. It reads the committed chain_tip row, so it is only asked between
 * transactions.
 */
#include "store/handle.h"

#include <string.h>

int aw_store_chain_head(aw_store *store, int64_t *count, unsigned char hash[32],
                        aw_error *err)
{
    sqlite3_stmt *tip;
    int rc;
    if (store->in_tx)
        return aw_error_set(err, AW_ERR,
                            "the chain head is read between transactions");
    if ((rc = store_stmt(store, STMT_TIP_GET, &tip, err)) != AW_OK)
        return rc;
    int step = sqlite3_step(tip);
    if (step == SQLITE_ROW && sqlite3_column_bytes(tip, 1) == 32) {
        *count = sqlite3_column_int64(tip, 0);
        memcpy(hash, sqlite3_column_blob(tip, 1), 32);
        rc = AW_OK;
    } else if (step == SQLITE_ROW) {
        rc = aw_error_set(err, AW_ERR_BROKEN, "index %s: chain tip is damaged",
                          store->path);
    } else {
        rc = store_fail(store, err, "read chain tip");
    }
    sqlite3_reset(tip);
    return rc;
}
