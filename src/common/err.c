#include "err.h"

static const char *const err_words[] = {
#define W_(name, word, msg) word,
    CAIRN_ERR_LIST(W_)
#undef W_
};

static const char *const err_messages[] = {
#define M_(name, word, msg) msg,
    CAIRN_ERR_LIST(M_)
#undef M_
};

const char *cairn_err_word(int code)
{
    int pos = -code;
    if (pos < 0 || pos >= CAIRN_ERR_COUNT_)
        return "ERR";
    return err_words[pos];
}

const char *cairn_err_message(int code)
{
    int pos = -code;
    if (pos < 0 || pos >= CAIRN_ERR_COUNT_)
        return "unknown error";
    return err_messages[pos];
}
