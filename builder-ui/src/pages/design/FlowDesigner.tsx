// The flow designer: states and transitions on a canvas (@xyflow/react). Drag from one state's
// handle to another to add a transition; select a state or transition to edit it in the side panel
// (labels, initial/terminal, colour, SLA, guard, roles, required fields, actions, timers). The
// server's design-time findings (unreachable states, dead ends, overlapping guards, …) come from a
// dry-run publish and are drawn on the canvas.
import { useCallback, useEffect, useMemo, useState } from 'react';
import { Alert, Button, Card, Col, Row, Space, Tag, Typography } from 'antd';
import { PlusOutlined } from '@ant-design/icons';
import { Background, Controls, Handle, MarkerType, Position, ReactFlow, type Connection, type Edge, type Node, type NodeProps } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { useParams, useSearchParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { ApiProblem, request, type FieldError } from '../../api/client';
import { PublishDialog } from '../../components/PublishDialog';
import { autoLayout, newFlow, syncStateField, tidyFlow, type FlowDoc, type Positions } from '../../lib/flowDesign';
import { useAppMeta, useLang } from '../../lib/hooks';
import type { Bundle } from '../../lib/metadata';
import { StatePanel, TransitionPanel } from './FlowPanels';

interface StateNodeData extends Record<string, unknown> { label: string; color?: string | null; initial?: boolean; terminal?: boolean; findings: string[] }

function StateNode({ data, selected }: NodeProps<Node<StateNodeData>>) {
  const bad = data.findings.length > 0;
  return (
    <div title={data.findings.join('\n')} style={{ padding: '8px 14px', borderRadius: 10, minWidth: 120, textAlign: 'center', background: '#fff',
      border: `2px solid ${bad ? '#ff4d4f' : selected ? '#2f6f4e' : data.color ?? '#8c8c8c'}`, boxShadow: selected ? '0 0 0 3px #cfe3d6' : undefined }}>
      <Handle type="target" position={Position.Left} />
      <div style={{ fontWeight: 600 }}>{data.initial ? '▶ ' : ''}{data.label}{data.terminal ? ' ■' : ''}</div>
      {bad && <div style={{ color: '#cf1322', fontSize: 11 }}>⚠ {data.findings.length}</div>}
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

const nodeTypes = { state: StateNode };

export function FlowDesigner() {
  const { app = '', flow: flowId = '' } = useParams();
  const [params] = useSearchParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const loaded = useAppMeta(app).data!;
  const meta = loaded.meta;
  const path = `flows/${flowId}.flow.json`;
  const canvasPath = `views/${flowId}_canvas.view.json`;
  const [flow, setFlow] = useState<FlowDoc>(() => {
    const existing = loaded.bundle[path] as FlowDoc | undefined;
    if (existing) return structuredClone(existing);
    const entity = params.get('entity') ?? meta.entities[0]?.id ?? '';
    const label = { en: params.get('en') || flowId, 'zh-CN': params.get('zh') || params.get('en') || flowId };
    return newFlow(flowId, entity, 'status', label);
  });
  const [positions, setPositions] = useState<Positions>(() => autoLayout(flow, ((loaded.bundle[canvasPath] as { positions?: Positions } | undefined)?.positions) ?? {}));
  const [selected, setSelected] = useState<{ kind: 'state' | 'transition'; index: number } | null>(null);
  const [findings, setFindings] = useState<FieldError[]>([]);
  const [otherErrors, setOtherErrors] = useState<FieldError[]>([]);
  const [publishing, setPublishing] = useState(false);

  const nextBundle = useCallback((): Bundle => {
    const entityPath = `entities/${flow.entity}.schema.json`;
    const entity = structuredClone(loaded.bundle[entityPath] as Record<string, unknown>) ?? {};
    const properties = { ...((entity.properties as Record<string, unknown>) ?? {}) };
    properties[flow.state_field] = syncStateField(properties[flow.state_field] as Record<string, unknown> | undefined, flow);
    return {
      ...loaded.bundle,
      [entityPath]: { ...entity, properties },
      [path]: tidyFlow(flow),
      [canvasPath]: { format_version: 1, id: `${flowId}_canvas`, kind: 'flow_canvas', flow: flowId, positions },
    };
  }, [flow, positions, loaded.bundle, path, canvasPath, flowId]);

  // The server's findings for the flow as it is now (debounced dry run).
  useEffect(() => {
    const timer = setTimeout(async () => {
      try {
        const report = (await request<{ warnings: FieldError[] }>('PUT', `/api/apps/${app}/bundle`, { body: nextBundle(), query: { dry_run: true } })).data;
        setFindings((report.warnings ?? []).filter((w) => w.file === path));
        setOtherErrors([]);
      } catch (e) {
        if (e instanceof ApiProblem) {
          setFindings(e.errors.filter((x) => x.file === path));
          setOtherErrors(e.errors.filter((x) => x.file !== path));
        }
      }
    }, 500);
    return () => clearTimeout(timer);
  }, [app, nextBundle, path]);

  const findingsAt = (prefix: string) => findings.filter((f) => f.pointer === prefix || f.pointer.startsWith(`${prefix}/`)).map((f) => f.message);
  const nodes: Node<StateNodeData>[] = useMemo(() => {
    // States without a position yet (new or renamed) get one from the automatic layout.
    const laidOut = autoLayout(flow, positions);
    return flow.states.map((s, i) => ({
    id: s.id,
    type: 'state',
    position: laidOut[s.id],
    selected: selected?.kind === 'state' && selected.index === i,
    data: { label: l(s.label, s.id), color: s.color, initial: s.initial, terminal: s.terminal, findings: findingsAt(`/states/${i}`) },
  }));
  }, [flow, positions, selected, findings, l]); // eslint-disable-line react-hooks/exhaustive-deps
  const edges: Edge[] = useMemo(() => flow.transitions.flatMap((tr, i) => (tr.from.length ? tr.from : flow.states.map((s) => s.id)).map((from) => {
    const bad = findingsAt(`/transitions/${i}`).length > 0;
    return {
      id: `${i}:${from}`,
      source: from,
      target: tr.to,
      label: tr.guard ? `${l(tr.label, tr.event)} · ${t('design.guarded')}` : l(tr.label, tr.event),
      markerEnd: { type: MarkerType.ArrowClosed },
      style: { stroke: bad ? '#ff4d4f' : selected?.kind === 'transition' && selected.index === i ? '#2f6f4e' : '#8c8c8c', strokeWidth: 2 },
      data: { index: i },
    };
  })), [flow, selected, findings, l, t]); // eslint-disable-line react-hooks/exhaustive-deps

  const onConnect = (c: Connection) => {
    if (!c.source || !c.target) return;
    const existing = flow.transitions.findIndex((tr) => tr.to === c.target && !tr.guard && tr.event.startsWith('to_'));
    if (existing >= 0 && !flow.transitions[existing].from.includes(c.source)) {
      const transitions = flow.transitions.map((tr, i) => (i === existing ? { ...tr, from: [...tr.from, c.source!] } : tr));
      setFlow({ ...flow, transitions });
      setSelected({ kind: 'transition', index: existing });
      return;
    }
    let event = `to_${c.target}`;
    let n = 2;
    while (flow.transitions.some((tr) => tr.event === event)) event = `to_${c.target}_${n++}`;
    const target = flow.states.find((s) => s.id === c.target);
    setFlow({ ...flow, transitions: [...flow.transitions, { event, from: [c.source], to: c.target, label: { en: `To ${target?.label?.en ?? c.target}`, 'zh-CN': `转到${target?.label?.['zh-CN'] ?? c.target}` } }] });
    setSelected({ kind: 'transition', index: flow.transitions.length });
  };
  const addState = () => {
    let n = flow.states.length + 1;
    while (flow.states.some((s) => s.id === `state_${n}`)) n += 1;
    const id = `state_${n}`;
    const next = { ...flow, states: [...flow.states, { id, label: { en: `State ${n}`, 'zh-CN': `状态 ${n}` } }] };
    setFlow(next);
    setPositions(autoLayout(next, positions));
    setSelected({ kind: 'state', index: next.states.length - 1 });
  };
  const addTransition = () => {
    const from = selected?.kind === 'state' ? flow.states[selected.index]?.id : flow.states[0]?.id;
    const to = flow.states.find((s) => s.id !== from)?.id ?? from;
    if (!from || !to) return;
    let n = flow.transitions.length + 1;
    while (flow.transitions.some((tr) => tr.event === `event_${n}`)) n += 1;
    setFlow({ ...flow, transitions: [...flow.transitions, { event: `event_${n}`, from: [from], to, label: { en: `Event ${n}`, 'zh-CN': `事件 ${n}` } }] });
    setSelected({ kind: 'transition', index: flow.transitions.length });
  };
  const entity = meta.entities.find((e) => e.id === flow.entity);
  return (
    <div>
      <Space wrap style={{ width: '100%', justifyContent: 'space-between', marginBottom: 12 }}>
        <Typography.Title level={4} style={{ margin: 0 }}>{t('design.flowTitle', { flow: l(flow.label, flowId) })} <Tag>{l(entity?.label, flow.entity)}</Tag></Typography.Title>
        <Space>
          <Button icon={<PlusOutlined />} onClick={addState} data-testid="add-state">{t('design.addState')}</Button>
          <Button icon={<PlusOutlined />} onClick={addTransition} data-testid="add-transition" disabled={flow.states.length < 2}>{t('design.addTransition')}</Button>
          <Button type="primary" onClick={() => setPublishing(true)}>{t('design.publish')}</Button>
        </Space>
      </Space>
      {findings.length > 0 && (
        <Alert type="warning" showIcon style={{ marginBottom: 8 }} data-testid="flow-findings" title={t('design.findings', { count: findings.length })}
          description={<ul style={{ margin: 0, paddingLeft: 18 }}>{findings.map((f, i) => <li key={i}><Tag>{f.code}</Tag>{f.message}</li>)}</ul>} />
      )}
      {otherErrors.length > 0 && <Alert type="info" showIcon style={{ marginBottom: 8 }} title={t('design.otherErrors', { count: otherErrors.length })} description={otherErrors.slice(0, 5).map((e, i) => <div key={i}>{e.file}:{e.pointer} {e.message}</div>)} />}
      <Row gutter={12}>
        <Col xs={24} lg={16}>
          <div style={{ height: 520, border: '1px solid #e5e5e5', borderRadius: 8, background: '#fff' }} data-testid="flow-canvas">
            <ReactFlow
              nodes={nodes}
              edges={edges}
              nodeTypes={nodeTypes}
              fitView
              onConnect={onConnect}
              onNodesChange={(changes) => {
                let next = positions;
                for (const c of changes) if (c.type === 'position' && c.position) next = { ...next, [c.id]: c.position };
                if (next !== positions) setPositions(next);
              }}
              onNodeClick={(_, node) => setSelected({ kind: 'state', index: flow.states.findIndex((s) => s.id === node.id) })}
              onEdgeClick={(_, edge) => setSelected({ kind: 'transition', index: (edge.data as { index: number }).index })}
              onPaneClick={() => setSelected(null)}
            >
              <Background />
              <Controls />
            </ReactFlow>
          </div>
        </Col>
        <Col xs={24} lg={8}>
          <Card size="small" title={t('design.properties')}>
            {selected?.kind === 'state' && flow.states[selected.index] && (
              <StatePanel flow={flow} index={selected.index} entity={entity} onChange={setFlow} onRemoved={() => setSelected(null)} findings={findingsAt(`/states/${selected.index}`)} />
            )}
            {selected?.kind === 'transition' && flow.transitions[selected.index] && (
              <TransitionPanel flow={flow} index={selected.index} entity={entity} onChange={setFlow} onRemoved={() => setSelected(null)} findings={findingsAt(`/transitions/${selected.index}`)} />
            )}
            {!selected && <Typography.Text type="secondary">{t('design.flowHelp')}</Typography.Text>}
          </Card>
        </Col>
      </Row>
      {publishing && <PublishDialog app={app} bundle={nextBundle()} etag={loaded.etag} open={publishing} onClose={() => setPublishing(false)} />}
    </div>
  );
}
