// Record a voice prompt in the browser (MediaRecorder) and put it in the upload form's file
// input; without a microphone or MediaRecorder, the file input alone remains.
// Its words come from the page (data- attributes, in the console's language).
(function () {
  "use strict";
  var form = document.getElementById("voice-form");
  if (!form || !window.MediaRecorder || !navigator.mediaDevices) return;
  var bar = form.querySelector(".recorder");
  var record = document.getElementById("record");
  var stop = document.getElementById("stop");
  var state = document.getElementById("record-state");
  var input = document.getElementById("file");
  var recorder = null;
  var chunks = [];
  bar.hidden = false;
  record.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.ondataavailable = function (e) { if (e.data.size) chunks.push(e.data); };
      recorder.onstop = function () {
        stream.getTracks().forEach(function (t) { t.stop(); });
        var type = recorder.mimeType || "audio/webm";
        var file = new File(chunks, "enregistrement." + (type.indexOf("ogg") >= 0 ? "ogg" : "webm"), { type: type });
        var list = new DataTransfer();
        list.items.add(file);
        input.files = list.files;
        state.textContent = state.dataset.ready;
        record.disabled = false;
        stop.disabled = true;
      };
      recorder.start();
      state.textContent = state.dataset.recording;
      record.disabled = true;
      stop.disabled = false;
      setTimeout(function () { if (recorder && recorder.state === "recording") recorder.stop(); }, 60000);
    }, function () { state.textContent = state.dataset.noMicrophone; });
  });
  stop.addEventListener("click", function () { if (recorder) recorder.stop(); });
})();
