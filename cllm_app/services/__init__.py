"""Services: the one place each rule lives. The CLI, the HTTP API and the window's bridge all ask them."""
