// The replies that handlers (ll_ops.cc) start themselves; the rest of what follows a JS answer is
// Session::Continue, in replies.cc.
#pragma once

#include "session.h"

namespace objmount {

// Replies to READDIR / READDIRPLUS from the entries the JS readdir gave.
void ReplyDirectory(Session* s, Request* r);
void ReplyDirectoryPlus(Session* s, Request* r);
// Runs the next JS operation a SETATTR asks for (chmod, chown, truncate, utimens, then getattr).
void SetattrNext(Session* s, Request* r);
// Opens a file: first the attributes auto_cache needs, if they are old, then the JS open.
void StartOpen(Session* s, Request* r);

}  // namespace objmount
