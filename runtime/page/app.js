// liverig's live page: a client of the node's documented WebSocket stream (runtime/page.py).
// The skeleton view is plain Canvas 2D (it always works); the avatar view needs WebGL, three.js and
// three-vrm (vendored by the node, loaded only when an avatar is shown).

const params = new URLSearchParams(location.search);
const token = params.get('token');
const $ = (id) => document.getElementById(id);

// What tests and curious users can read: window.liverig.
const live = {
  hello: null, frame: null, frames: 0, renderedIndex: -1, rendered: 0, state: null, stats: null,
  results: [], connected: false, avatar: null, send: (message) => send(message),
};
window.liverig = live;

// ---- quaternions (x, y, z, w) ------------------------------------------------------------------

function qmul(a, b) {
  return [
    a[3] * b[0] + a[0] * b[3] + a[1] * b[2] - a[2] * b[1],
    a[3] * b[1] - a[0] * b[2] + a[1] * b[3] + a[2] * b[0],
    a[3] * b[2] + a[0] * b[1] - a[1] * b[0] + a[2] * b[3],
    a[3] * b[3] - a[0] * b[0] - a[1] * b[1] - a[2] * b[2],
  ];
}

function qrotate(q, v) {
  const [x, y, z, w] = q;
  const tx = 2 * (y * v[2] - z * v[1]), ty = 2 * (z * v[0] - x * v[2]), tz = 2 * (x * v[1] - y * v[0]);
  return [v[0] + w * tx + y * tz - z * ty, v[1] + w * ty + z * tx - x * tz, v[2] + w * tz + x * ty - y * tx];
}

// World positions of every bone: the same forward kinematics as runtime/retarget.py (a bone sits
// at its parent's position plus the parent's rotation applied to its local offset).
function forwardKinematics(parents, localPos, localRot, rootPos, rootRot) {
  const positions = new Array(parents.length), rotations = new Array(parents.length);
  for (let b = 0; b < parents.length; b++) {
    const p = parents[b];
    const parentRot = p < 0 ? rootRot : rotations[p], parentPos = p < 0 ? rootPos : positions[p];
    const offset = qrotate(parentRot, localPos[b]);
    positions[b] = [parentPos[0] + offset[0], parentPos[1] + offset[1], parentPos[2] + offset[2]];
    rotations[b] = qmul(parentRot, localRot[b]);
  }
  return positions;
}

// ---- the skeleton view -----------------------------------------------------------------------

const skeleton = $('skeleton');
const ctx2d = skeleton.getContext('2d');
let view = null; // how rig space maps to the canvas, fixed at each hello from the rest pose

function axisIndex(axis) { return 'xyz'.indexOf(axis.slice(-1)); }

function planView(hello) {
  const up = axisIndex(hello.axes.up), forward = axisIndex(hello.axes.forward);
  const side = [0, 1, 2].find((i) => i !== up && i !== forward);
  // Seen from the front: the avatar's left is on the viewer's right.
  const sideSign = hello.axes.handedness === 'left' ? -1 : 1;
  const rest = forwardKinematics(hello.parents, hello.rest_pos, hello.rest_rot, [0, 0, 0], [0, 0, 0, 1]);
  const heights = rest.map((p) => p[up]);
  const low = Math.min(...heights), high = Math.max(...heights);
  const scale = (0.75 * skeleton.height) / Math.max(high - low, 1e-6);
  view = { up, side, sideSign, scale, low };
}

function drawSkeleton(hello, frame) {
  const positions = forwardKinematics(hello.parents, frame.pos, frame.rot, frame.root.pos, frame.root.rot);
  const { up, side, sideSign, scale, low } = view;
  const centre = positions[0][side]; // follows the hips across: the body stays in view
  const w = skeleton.width, h = skeleton.height;
  const px = (p) => [w / 2 + sideSign * (p[side] - centre) * scale, h * 0.9 - (p[up] - low) * scale];
  ctx2d.fillStyle = '#262a33';
  ctx2d.fillRect(0, 0, w, h);
  ctx2d.strokeStyle = frame.tracking ? '#7ad' : '#667';
  ctx2d.lineWidth = 3;
  ctx2d.beginPath();
  hello.parents.forEach((p, b) => {
    if (p < 0) return;
    const [x0, y0] = px(positions[p]), [x1, y1] = px(positions[b]);
    ctx2d.moveTo(x0, y0);
    ctx2d.lineTo(x1, y1);
  });
  ctx2d.stroke();
  ctx2d.fillStyle = '#dde';
  for (const p of positions) {
    const [x, y] = px(p);
    ctx2d.fillRect(x - 2, y - 2, 4, 4);
  }
  ctx2d.fillText(`frame ${frame.index}${frame.tracking ? '' : ' (nobody tracked)'}`, 8, 16);
}

// ---- the avatar view (WebGL, three.js, three-vrm) --------------------------------------------

const VRM1_EXPRESSIONS = {
  A: 'aa', I: 'ih', U: 'ou', E: 'ee', O: 'oh', Blink: 'blink', Blink_L: 'blinkLeft', Blink_R: 'blinkRight',
  Joy: 'happy', Angry: 'angry', Sorrow: 'sad', Fun: 'relaxed', Neutral: 'neutral', LookUp: 'lookUp',
  LookDown: 'lookDown', LookLeft: 'lookLeft', LookRight: 'lookRight', Surprised: 'surprised',
};

// Unity HumanBodyBones -> VRM 1.0 humanoid names (three-vrm maps VRM 0.x files to these itself).
function vrmBoneName(unity) {
  const thumb = unity.match(/^(Left|Right)Thumb(Proximal|Intermediate|Distal)$/);
  if (thumb) {
    const part = { Proximal: 'Metacarpal', Intermediate: 'Proximal', Distal: 'Distal' }[thumb[2]];
    return `${thumb[1].toLowerCase()}Thumb${part}`;
  }
  return unity[0].toLowerCase() + unity.slice(1);
}

let avatar = null; // {THREE, renderer, scene, camera, controls, loader, vrm, clock}

function webglAvailable() {
  try {
    return !!document.createElement('canvas').getContext('webgl2');
  } catch {
    return false;
  }
}

async function setUpAvatar() {
  if (avatar) return avatar;
  if (!webglAvailable()) {
    $('avatar-hint').textContent = 'This browser has no WebGL: the skeleton view shows the motion.';
    return null;
  }
  const THREE = await import('three');
  const { OrbitControls } = await import('three/addons/controls/OrbitControls.js');
  const { GLTFLoader } = await import('three/addons/loaders/GLTFLoader.js');
  const { VRMLoaderPlugin, VRMUtils } = await import('@pixiv/three-vrm');
  const canvas = $('avatar');
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true });
  renderer.setSize(canvas.clientWidth, canvas.clientHeight, false);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x262a33);
  scene.add(new THREE.AmbientLight(0xffffff, 1.2));
  const light = new THREE.DirectionalLight(0xffffff, 2.0);
  light.position.set(1, 2, 3);
  scene.add(light);
  const camera = new THREE.PerspectiveCamera(30, canvas.clientWidth / canvas.clientHeight, 0.1, 50);
  camera.position.set(0, 1.2, 3.5);
  const controls = new OrbitControls(camera, canvas);
  controls.target.set(0, 1.0, 0);
  controls.update();
  controls.addEventListener('change', () => { if (avatar) avatar.dirty = true; });
  const loader = new GLTFLoader();
  loader.register((parser) => new VRMLoaderPlugin(parser));
  avatar = { THREE, VRMUtils, renderer, scene, camera, controls, loader, vrm: null, clock: new THREE.Clock() };
  return avatar;
}

async function loadAvatar(buffer, label) {
  const a = await setUpAvatar();
  if (!a) return;
  let gltf;
  try {
    gltf = await a.loader.parseAsync(buffer, '');
  } catch (error) {
    showMessage(`${label}: not a VRM/glTF file (${error.message || error})`, false);
    return;
  }
  const vrm = gltf.userData.vrm;
  if (!vrm) {
    showMessage(`${label}: a glTF without VRM humanoid data; the skeleton view still shows the motion`, false);
    return;
  }
  if (a.vrm) {
    a.scene.remove(a.vrm.scene);
    a.VRMUtils.deepDispose(a.vrm.scene);
  }
  a.VRMUtils.rotateVRM0(vrm); // VRM 0.x files face -Z: turn them to face the camera like VRM 1.0
  a.scene.add(vrm.scene);
  const hips = vrm.humanoid.getNormalizedBoneNode('hips');
  a.vrm = vrm;
  a.restHips = hips ? hips.position.clone() : null;
  live.avatar = label;
  live.avatarLoads = (live.avatarLoads || 0) + 1;
  a.dirty = true;
  $('avatar-hint').textContent = `${label} (drop another .vrm to change)`;
  showMessage(`avatar ${label} loaded`, true);
}

// Unity axes (left-handed; the page's stream is always a Unity humanoid) -> three.js / glTF axes,
// the avatar facing +Z: x is mirrored, so a rotation (x, y, z, w) becomes (x, -y, -z, w).
function driveAvatar(hello, frame) {
  const a = avatar;
  if (!a || !a.vrm) return;
  const vrm = a.vrm;
  const left = hello.axes.handedness === 'left';
  hello.bones.forEach((name, b) => {
    const node = vrm.humanoid.getNormalizedBoneNode(vrmBoneName(name));
    if (!node) return;
    const [x, y, z, w] = frame.rot[b];
    if (left) node.quaternion.set(x, -y, -z, w);
    else node.quaternion.set(x, y, z, w);
  });
  const hips = vrm.humanoid.getNormalizedBoneNode('hips');
  if (hips && a.restHips) {
    const now = qrotate(frame.root.rot, frame.pos[0]);
    const unit = hello.units === 'cm' ? 0.01 : 1;
    const d = [0, 1, 2].map((i) => (frame.root.pos[i] + now[i] - hello.rest_pos[0][i]) * unit);
    hips.position.set(a.restHips.x + (left ? -d[0] : d[0]), a.restHips.y + d[1], a.restHips.z + d[2]);
  }
  if (vrm.expressionManager) {
    for (const [name, value] of Object.entries(frame.blend || {})) {
      const target = VRM1_EXPRESSIONS[name] || name;
      if (vrm.expressionManager.getExpression(target)) vrm.expressionManager.setValue(target, value);
    }
  }
}

function renderAvatar() {
  const a = avatar;
  if (!a) return;
  const delta = a.clock.getDelta();
  if (a.vrm) {
    a.vrm.update(delta);
    // The camera follows the hips (at the same distance), so a person walking about stays in view.
    const hips = a.vrm.humanoid.getRawBoneNode('hips');
    if (hips) {
      const target = hips.getWorldPosition(new a.THREE.Vector3());
      target.y = a.controls.target.y;
      const step = target.sub(a.controls.target).multiplyScalar(0.1);
      a.controls.target.add(step);
      a.camera.position.add(step);
      a.controls.update();
    }
  }
  a.renderer.render(a.scene, a.camera);
}

// How far (metres) the avatar's joints are from the stream's own forward kinematics, hips-relative,
// for the frame drawn last: the check that the avatar shows the pose the node sent.
live.avatarError = () => {
  const a = avatar, hello = live.hello, frame = drawn;
  if (!a || !a.vrm || !hello || !frame) return null;
  a.vrm.update(0);
  a.vrm.scene.updateMatrixWorld(true);
  const fk = forwardKinematics(hello.parents, frame.pos, frame.rot, frame.root.pos, frame.root.rot);
  const flip = hello.axes.handedness === 'left' ? -1 : 1;
  const hips = a.vrm.humanoid.getRawBoneNode('hips').getWorldPosition(new a.THREE.Vector3());
  let worst = 0, bones = 0;
  hello.bones.forEach((name, b) => {
    const node = a.vrm.humanoid.getRawBoneNode(vrmBoneName(name));
    if (!node) return;
    const v = node.getWorldPosition(new a.THREE.Vector3()).sub(hips);
    const f = [flip * (fk[b][0] - fk[0][0]), fk[b][1] - fk[0][1], fk[b][2] - fk[0][2]];
    worst = Math.max(worst, Math.hypot(v.x - f[0], v.y - f[1], v.z - f[2]));
    bones += 1;
  });
  return { worst, bones };
};

const box = $('avatar-box');
box.addEventListener('dragover', (event) => { event.preventDefault(); box.classList.add('drag'); });
box.addEventListener('dragleave', () => box.classList.remove('drag'));
box.addEventListener('drop', async (event) => {
  event.preventDefault();
  box.classList.remove('drag');
  const file = event.dataTransfer.files[0];
  if (file) {
    live.avatarDropped = true; // the user's own: a rig change on the node does not replace it
    await loadAvatar(await file.arrayBuffer(), file.name);
  }
});
$('vrm-file').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  if (file) {
    live.avatarDropped = true;
    await loadAvatar(await file.arrayBuffer(), file.name);
  }
});

// ---- the stream ------------------------------------------------------------------------------

let socket = null;
let nextId = 1;
let previewUrl = null;

function send(message) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return null;
  const id = nextId++;
  socket.send(JSON.stringify({ id, ...message }));
  return id;
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const query = token ? `?format=json&token=${encodeURIComponent(token)}` : '?format=json';
  socket = new WebSocket(`${scheme}://${location.host}/stream${query}`);
  socket.binaryType = 'blob';
  socket.onopen = () => {
    live.connected = true;
    $('connection').textContent = 'connected';
    $('connection').className = 'ok';
    if ($('preview').checked) send({ type: 'preview', on: true });
  };
  socket.onclose = () => {
    live.connected = false;
    $('connection').textContent = 'disconnected (retrying)';
    $('connection').className = 'bad';
    setTimeout(connect, 1000);
  };
  socket.onmessage = (event) => {
    if (typeof event.data !== 'string') {
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = URL.createObjectURL(event.data);
      $('camera').src = previewUrl;
      return;
    }
    const message = JSON.parse(event.data);
    if (message.type === 'frame') {
      live.frame = message;
      live.frames += 1;
    } else if (message.type === 'hello') {
      live.hello = message;
      live.frame = null;
      planView(message);
    } else if (message.type === 'state') {
      showState(message);
    } else if (message.type === 'stats') {
      showStats(message);
    } else if (message.type === 'result') {
      live.results.push(message);
      showMessage(message.message, message.ok);
    }
  };
}

// ---- drawing, once per display frame ---------------------------------------------------------

let drawn = null;
function tick() {
  const frame = live.frame;
  if (frame && frame !== drawn && live.hello && view) {
    drawSkeleton(live.hello, frame);
    driveAvatar(live.hello, frame);
    drawn = frame;
    live.renderedIndex = frame.index;
    live.rendered += 1;
    send({ type: 'rendered', index: frame.index });
    renderAvatar(); // only for a new frame (or a camera drag): software WebGL is costly on a small CPU
  } else if (avatar && avatar.dirty) {
    renderAvatar();
  }
  if (avatar) avatar.dirty = false;
  requestAnimationFrame(tick);
}

// ---- stats and controls ----------------------------------------------------------------------

function showMessage(text, ok) {
  const element = $('message');
  element.textContent = text;
  element.className = ok ? 'ok' : 'bad';
}

function fmt(value, digits = 1) {
  return value === null || value === undefined ? '–' : Number(value).toFixed(digits);
}

function showStats(stats) {
  live.stats = stats;
  const lag = stats.page_lag_frames;
  const rig = live.hello ? ` · rig ${live.hello.rig} (${live.hello.bones.length} bones)` : '';
  $('summary').textContent = `${fmt(stats.fps)} fps · ${stats.dropped} dropped · frame ${stats.index}${rig}` +
    (lag ? ` · page lag p50 ${fmt(lag.p50)} / p99 ${fmt(lag.p99)} frames` : '');
  const body = $('stages').tBodies[0];
  body.replaceChildren(...Object.entries(stats.stages_ms).map(([stage, [p50, p99]]) => {
    const row = document.createElement('tr');
    for (const text of [stage === 'total' ? 'end to end' : stage, fmt(p50, 2), fmt(p99, 2)]) {
      row.insertCell().textContent = text;
    }
    return row;
  }));
  const parts = Object.entries(stats.tracking).map(([part, value]) =>
    typeof value === 'boolean' ? `${part}: ${value ? 'tracking' : 'lost'}` : `${part}: ${value}`);
  $('tracking').textContent = parts.join(' · ');
  showParts(stats);
  showOutputs(stats.outputs);
}

// What each part saw and what the budget scheduler does with it (runtime/scheduler.py).
function showParts(stats) {
  const scheduler = stats.scheduler;
  $('scheduler').textContent = scheduler
    ? `(scheduler: ${fmt(scheduler.budget_ms)} ms budget per frame)`
    : '(no scheduler: every part runs every frame)';
  const body = $('parts').tBodies[0];
  body.replaceChildren(...Object.entries(stats.parts).map(([name, part]) => {
    const row = document.createElement('tr');
    row.dataset.part = name;
    const state = part.tracking === null ? part.what : `${part.tracking ? 'tracking' : 'lost'}: ${part.what}`;
    const cells = [
      name,
      part.frames_ago > 1 ? `${state} (${part.frames_ago} frames ago)` : state,
      part.scheduled ? fmt(part.rate_hz) : 'every frame',
      part.ran === null ? '' : (part.ran ? 'ran' : 'held'),
      part.ran_share === null ? '' : `${fmt(100 * part.ran_share, 0)} %`,
      part.detail === null ? '' : String(part.detail),
      part.cost_ms === null ? '' : fmt(part.cost_ms, 2),
    ];
    for (const text of cells) row.insertCell().textContent = text;
    row.cells[1].className = part.tracking === null ? '' : (part.tracking ? 'ok' : 'bad');
    return row;
  }));
}

function showOutputs(outputs) {
  const body = $('outputs').tBodies[0];
  body.replaceChildren(...outputs.map((output) => {
    const row = document.createElement('tr');
    const toggle = document.createElement('input');
    toggle.type = 'checkbox';
    toggle.checked = output.enabled;
    toggle.disabled = output.page;
    toggle.dataset.index = output.index;
    toggle.addEventListener('change', () =>
      send({ type: 'control', action: 'output', index: output.index, enabled: toggle.checked }));
    row.insertCell().append(toggle);
    row.insertCell().textContent = output.name;
    row.insertCell().textContent = output.clients === null ? '' : `${output.clients} clients`;
    return row;
  }));
}

const SETTING_IDS = ['motion.method', 'motion.weights', 'motion.one_euro.min_cutoff', 'motion.one_euro.beta',
  'motion.one_euro.d_cutoff', 'motion.deadband.enabled', 'motion.deadband.inner_m', 'motion.deadband.outer_m',
  'retarget.mirror', 'retarget.move_root', 'retarget.rig',
  'perception.face.enabled', 'perception.hands.enabled'];

function showState(state) {
  live.state = state;
  const method = $('motion.method');
  if (!method.options.length) {
    for (const name of state.methods) method.add(new Option(name, name));
  }
  const rigs = $('rigs');
  if (!rigs.options.length) {
    for (const name of state.rigs) rigs.append(new Option(name, name));
  }
  for (const key of ['perception.face.enabled', 'perception.hands.enabled']) {
    $(key).disabled = !state.images;
    $(key).title = state.images ? '' : 'this source has no images (a landmark replay or audio)';
  }
  for (const key of SETTING_IDS) {
    const element = $(key);
    if (element.type === 'checkbox') element.checked = state.settings[key];
    else element.value = state.settings[key];
  }
  showOutputs(state.outputs);
  $('record').textContent = state.recording ? 'stop' : 'start';
  $('recording').textContent = state.recording ? `recording ${state.recording}` : `into ${state.record_dir}`;
  $('save-to').textContent = `to ${state.save_to} (or the file named, in its folder)`;
  $('preview').disabled = !state.preview_allowed;
  $('camera').alt = state.preview_allowed ? 'camera preview' : 'camera preview is off (page.preview)';
  if (state.avatar && live.avatarVersion !== state.avatar_version && !live.avatarDropped) {
    live.avatarVersion = state.avatar_version; // a new rig: its avatar (a .vrm rig) or the mannequin
    const url = token ? `${state.avatar}?token=${encodeURIComponent(token)}` : state.avatar;
    if (webglAvailable()) {
      fetch(url).then((r) => r.arrayBuffer()).then((buffer) => loadAvatar(buffer, state.avatar_name));
    }
  }
}

for (const key of SETTING_IDS) {
  $(key).addEventListener('change', (event) => {
    const element = event.target;
    let value = element.value;
    if (element.type === 'checkbox') value = element.checked;
    else if (element.type === 'number') value = element.value === '' ? null : Number(element.value);
    send({ type: 'control', set: { [key]: value } });
  });
}
$('record').addEventListener('click', () => {
  if (live.state && live.state.recording) send({ type: 'control', action: 'stop' });
  else send({ type: 'control', action: 'record', name: $('record-name').value });
});
$('save').addEventListener('click', () => {
  const name = $('save-name').value.trim();
  send({ type: 'control', action: 'save', name: name || undefined, overwrite: $('save-overwrite').checked });
});
$('preview').addEventListener('change', (event) => send({ type: 'preview', on: event.target.checked }));

if (!webglAvailable()) {
  $('avatar-hint').textContent = 'This browser has no WebGL, so no avatar: the skeleton view shows the motion.';
}
connect();
requestAnimationFrame(tick);
