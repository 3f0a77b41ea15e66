// JSON requests to the REST API; a refusal becomes an Error carrying the
// API's message, `code` and HTTP `status`.

import { apiUrl } from "./config.js";

export async function request(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(apiUrl() + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new Error("Cannot reach the server. Check your connection and try again.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && (data.error || data.message)) || `Request failed (HTTP ${response.status})`;
    const error = new Error(String(message));
    error.code = data && data.code;
    error.status = response.status;
    throw error;
  }
  return data || {};
}

export function postJSON(path, body) {
  return request("POST", path, { body });
}
