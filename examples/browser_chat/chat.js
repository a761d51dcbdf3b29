// The chat page: Momento's web SDK (@gomomento/sdk-web, unchanged) subscribing and publishing on one room topic of
// tidings over gRPC-web. The backend only mints the token (POST /token); messages go from the page to tidings and
// back. esbuild bundles this file with the SDK into build/chat.bundle.js (served as /chat.js).
import {
  CredentialProvider,
  TopicClient,
  TopicConfigurations,
  TopicPublish,
  TopicSubscribe,
} from '@gomomento/sdk-web';

// Kept for the tab (sessionStorage): who joined, and what was shown, so that a reload shows the same room and no
// message twice. The web SDK's subscribe takes no resume position, and a new subscription begins with the topic's
// newest retained message: items are shown once each, by sequence number.
const STORAGE_KEY = 'tidings-chat';

const $ = id => document.getElementById(id);
let state = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
let subscription = null;

function save() {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(state));
}

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

function render(message) {
  const li = document.createElement('li');
  li.dataset.seq = String(message.seq);
  li.classList.toggle('mine', message.author === state.name);
  const author = document.createElement('span');
  author.className = 'author';
  author.textContent = message.author || '(anonymous)';
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = message.text;
  li.append(author, text);
  $('messages').append(li);
}

function onItem(item) {
  const seq = item.sequenceNumber();
  if (state.messages.some(message => message.seq === seq)) return; // shown before the reload
  const message = { seq, author: item.tokenId(), text: item.valueString() };
  state.messages.push(message);
  save();
  render(message);
}

function client() {
  // In development the backend gives tidings' HTTP port as endpoint overrides; in production (webEndpoint null)
  // the SDK derives https://web.cache.<endpoint> from the endpoint inside the token (docs/browser.md).
  const endpoint = state.webEndpoint;
  const credentialProvider = endpoint
    ? CredentialProvider.fromString({
        apiKey: state.token,
        endpointOverrides: { cacheEndpoint: endpoint, controlEndpoint: endpoint, tokenEndpoint: endpoint },
      })
    : CredentialProvider.fromString({ apiKey: state.token });
  return new TopicClient({ configuration: TopicConfigurations.Default.latest(), credentialProvider });
}

async function enter() {
  $('join').hidden = true;
  $('room').hidden = false;
  $('messages').replaceChildren();
  state.messages.forEach(render);
  const topics = client();
  const response = await topics.subscribe(state.cache, state.topic, {
    onItem,
    onError: error => setStatus(`disconnected: ${error.message()}`, true),
  });
  if (!(response instanceof TopicSubscribe.Subscription)) {
    setStatus(`could not subscribe: ${response.message()}`, true);
    return;
  }
  subscription = response;
  setStatus(`${state.name} in ${state.topic}${state.readOnly ? ' (watching)' : ''}`);
  $('room').dataset.ready = 'true';

  $('send').onsubmit = async event => {
    event.preventDefault();
    const text = $('text').value;
    const published = await topics.publish(state.cache, state.topic, text);
    $('send-error').hidden = published instanceof TopicPublish.Success;
    if (published instanceof TopicPublish.Success) {
      $('text').value = '';
    } else {
      $('send-error').textContent = `not sent: ${published.message()}`;
    }
  };
}

$('join').onsubmit = async event => {
  event.preventDefault();
  const readOnly = $('read-only').checked;
  const response = await fetch('/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: $('name').value, readOnly }),
  });
  const minted = await response.json();
  if (!response.ok) {
    alert(minted.error);
    return;
  }
  state = { ...minted, readOnly, messages: [] };
  save();
  await enter();
};

$('leave').onclick = () => {
  if (subscription) subscription.unsubscribe();
  sessionStorage.removeItem(STORAGE_KEY);
  location.reload();
};

if (state) enter();
