"""The terminal's side of a remote video teller call (issue 5).

Pure parts: ``messages`` (session/desk wire formats), ``call`` (the call state machine),
``channel`` (data-channel framing), ``customer`` (the simulated customer's choices).
Shells: ``client`` (drives the state machine over the agent's MQTT link), ``peer`` (aiortc
and Janus, imported only when a call starts), ``sources`` (camera and microphone tracks),
``faceaware`` (region-of-interest preprocessing on the outgoing video), ``terminal_side``
(answers the teller's data-channel requests), ``screen`` (the customer screen's HTTP server).
"""
