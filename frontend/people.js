// A person's name (on a message, in the online panel, among a room's
// members) opens what can be done with them: "Direct message" opens the one
// direct room of the two of you (`POST /api/dms`), made on first ask.

import { openDialog, show } from "./dialogs.js";
import { enterRoom } from "./roomdialogs.js";
import { apiRequest, currentSession } from "./session.js";

export function initPeople() {
  document.addEventListener("click", (event) => {
    const name = event.target.closest("button.user[data-user]");
    if (name && currentSession()) openPerson(name.dataset.user);
  });
}

function openPerson(user) {
  const find = openDialog("person-template", "person-title");
  find("person-title").textContent = user;
  const button = find("direct-message");
  const error = find("person-error");
  if (currentSession().username === user) {
    button.hidden = true;
    show(error, "This is you.");
    return;
  }
  button.setAttribute("aria-label", `Direct message ${user}`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const answer = await apiRequest("POST", "/api/dms", { username: user });
      find("person-title").closest("dialog").close();
      enterRoom(answer.room);
    } catch (failure) {
      show(error, failure.message);
      button.disabled = false;
    }
  });
  button.focus();
}
