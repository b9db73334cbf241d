// /console/integrations: the admin's webhooks, API keys and queue bots (integrations.js), signed in with
// the console's session of this tab (sessionStorage 'helpline:console').

import { createApi } from './api.js';
import { IntegrationsAdmin } from './integrations.js';

const $ = (id) => document.getElementById(id);

function session() {
  try {
    return JSON.parse(sessionStorage.getItem('helpline:console') || '{}') || {};
  } catch {
    return {};
  }
}

const { token, user } = session();
if (!token || !user?.permissions?.includes('admin')) {
  $('integrations-signin').hidden = false;
} else {
  const api = createApi({ getToken: () => token });
  const admin = new IntegrationsAdmin({
    api,
    root: $('integrations'),
    onError: (error) => {
      $('integrations-error').hidden = !error;
      $('integrations-error').textContent = error ? `Something went wrong: ${error.message}` : '';
    },
  });
  admin.load();
}
