"""The terminal's side of a remote video teller call (issue 5).

Pure parts: ``call`` (the call state machine, over the call codec ``common.wire.call`` it
shares with the desk), ``customer`` (the simulated customer's choices); the data-channel
framing is ``common.wire.datachannel``.
Shells: ``client`` (drives the state machine over the agent's MQTT link), ``peer`` (aiortc
and Janus, imported only when a call starts), ``sources`` (camera and microphone tracks),
``faceaware`` (region-of-interest preprocessing on the outgoing video), ``terminal_side``
(answers the teller's data-channel requests), ``screen`` (the customer screen's HTTP server).
"""
