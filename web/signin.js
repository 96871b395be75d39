// The sign-in link's token page: drop the token from the address bar and the browser's history,
// then post it (a form post: the token lands in no URL, history entry, Referer or request log).
history.replaceState(null, '', '/signin');
document.getElementById('forward-token').submit();
