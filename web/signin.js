// The sign-in link's page: drop the token from the address bar and the browser's history. The
// token is posted only when the person confirms whose account it is (the form's button).
history.replaceState(null, '', '/signin');
