// The web simulator: a chat over POST /api/v1/simulator/messages, and a poll of
// GET /api/v1/simulator/messages for what the bot sends on its own (notices, reminders, an
// agent's replies), shown as bot bubbles as they arrive. No framework, no build.
// Text is always inserted with textContent, never as HTML.
(function () {
  "use strict";

  var ENDPOINT = "/api/v1/simulator/messages";
  var list = document.getElementById("messages");
  var composer = document.getElementById("composer");
  var input = document.getElementById("text");
  var sendButton = document.getElementById("send");
  var phoneInput = document.getElementById("phone");
  var newButton = document.getElementById("new-conversation");
  var userLabel = document.getElementById("user-id");
  var userId = "";
  var busy = false;
  var cursor = 0; // the last proactive message shown
  var POLL_MS = 2500;

  function randomId() {
    var bytes = new Uint8Array(6);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return "web-" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function scrollToEnd() {
    list.scrollTop = list.scrollHeight;
  }

  function timeNow() {
    var d = new Date();
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  function bubble(kind, text) {
    var item = document.createElement("li");
    item.className = "bubble " + kind;
    var who = document.createElement("span");
    who.className = "visually-hidden";
    who.textContent = kind === "user" ? "Vous : " : "Bot : ";
    var body = document.createElement("p");
    body.className = "text";
    body.textContent = text;
    var stamp = document.createElement("span");
    stamp.className = "time";
    stamp.textContent = timeNow();
    item.appendChild(who);
    item.appendChild(body);
    item.appendChild(stamp);
    list.appendChild(item);
    return item;
  }

  function systemNote(text, isError) {
    var item = document.createElement("li");
    item.className = isError ? "system error" : "system";
    if (isError) item.setAttribute("role", "alert");
    item.textContent = text;
    list.appendChild(item);
    scrollToEnd();
  }

  // Choices of earlier messages no longer apply: the numbers mean something else now.
  function retireChoices() {
    var buttons = list.querySelectorAll(".choices button");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = true;
    }
  }

  function choices(item, labels) {
    var group = document.createElement("div");
    group.className = "choices";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Choix proposés");
    labels.forEach(function (label, index) {
      var number = String(index + 1);
      var button = document.createElement("button");
      button.type = "button";
      button.dataset.number = number;
      var badge = document.createElement("span");
      badge.className = "number";
      badge.setAttribute("aria-hidden", "true");
      badge.textContent = number;
      var name = document.createElement("span");
      name.className = "label";
      name.textContent = label;
      button.appendChild(badge);
      button.appendChild(name);
      button.setAttribute("aria-label", number + ". " + label);
      button.addEventListener("click", function () {
        send(number, true);
      });
      group.appendChild(button);
    });
    item.appendChild(group);
    return group;
  }

  function setBusy(value) {
    busy = value;
    sendButton.disabled = value;
    list.setAttribute("aria-busy", value ? "true" : "false");
    var typing = document.getElementById("typing");
    if (value && !typing) {
      typing = document.createElement("li");
      typing.id = "typing";
      typing.className = "bubble bot typing";
      typing.setAttribute("aria-hidden", "true");
      typing.innerHTML = "<span></span><span></span><span></span>";
      list.appendChild(typing);
      scrollToEnd();
    } else if (!value && typing) {
      typing.parentNode.removeChild(typing);
    }
  }

  function send(text, fromChoice) {
    if (busy || !text.trim()) return;
    retireChoices();
    bubble("user", text);
    scrollToEnd();
    var body = { user: userId, text: text };
    var phone = phoneInput.value.trim();
    if (phone) body.phone = phone;
    setBusy(true);
    fetch(ENDPOINT, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    }).then(function (result) {
      setBusy(false);
      if (!result.ok) {
        var detail = (result.data && (result.data.detail || result.data.title)) || result.status;
        systemNote("Le message n'a pas été accepté : " + detail, true);
        input.focus();
        return;
      }
      var firstChoice = null;
      (result.data.replies || []).forEach(function (reply) {
        var item = bubble("bot", reply.text || "");
        if (reply.image) {
          var image = document.createElement("img");
          image.className = "media";
          image.src = new URL(reply.image, window.location.href).pathname;  // same origin
          image.alt = "Code QR du rendez-vous";
          item.insertBefore(image, item.querySelector(".text"));
        }
        if (reply.choices && reply.choices.length) {
          var group = choices(item, reply.choices);
          firstChoice = firstChoice || group.querySelector("button");
        }
      });
      scrollToEnd();
      if (fromChoice && firstChoice) {
        firstChoice.focus({ preventScroll: true });
      } else {
        input.focus({ preventScroll: true });
      }
    }).catch(function () {
      setBusy(false);
      systemNote("Pas de réponse du serveur. Vérifiez la connexion et réessayez.", true);
      input.focus();
    });
  }

  function showPushed(messages) {
    messages.forEach(function (message) {
      var item = bubble("bot", message.text || "");
      item.classList.add("pushed");
      if (message.choices && message.choices.length) {
        retireChoices();
        choices(item, message.choices);
      }
    });
    if (messages.length) scrollToEnd();
  }

  function poll() {
    var asked = userId;
    var url = ENDPOINT + "?user=" + encodeURIComponent(asked) + "&after=" + cursor;
    fetch(url, { headers: { "Accept": "application/json" } }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (data) {
      if (data && asked === userId) {
        cursor = data.cursor;
        showPushed(data.messages || []);
      }
    }).catch(function () {
      // offline for a moment: the next poll tries again
    }).then(function () {
      window.setTimeout(poll, POLL_MS);
    });
  }

  function newConversation() {
    cursor = 0;
    userId = randomId();
    userLabel.textContent = userId;
    while (list.firstChild) list.removeChild(list.firstChild);
    systemNote("Nouvelle conversation. Écrivez « Bonjour » pour commencer.", false);
    input.value = "";
    input.focus();
  }

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim()) {
      input.focus();
      return;
    }
    input.value = "";
    send(text, false);
  });

  document.getElementById("settings").addEventListener("submit", function (event) {
    event.preventDefault();
    input.focus();
  });

  newButton.addEventListener("click", newConversation);

  userId = randomId();
  userLabel.textContent = userId;
  input.focus();
  window.setTimeout(poll, POLL_MS);
})();
